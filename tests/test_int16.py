"""16x8 models (int16 activations, int8 weights, int64 biases) built at test
time with the project's TFLite writer, against TFLM.

Each model chains the 16x8 operators mcuforge supports beyond the seanet
set (QUANTIZE int8 -> int16 and int16 -> int8, DEPTHWISE_CONV_2D with a
depth multiplier, MAX_POOL_2D, RESHAPE, FULLY_CONNECTED, CONV_2D with a fused
ReLU, ADD, SUB with broadcasting, STRIDED_SLICE, CONCATENATION, LEAKY_RELU,
AVERAGE_POOL_2D, MUL);
weights, biases and scales are seeded random. The generated C (host gcc,
strict warnings) and the NumPy reference equal the ``tflite_micro``
interpreter byte for byte on random inputs; a sample (these models and
three seanet models) runs under QEMU Cortex-M4 with the same bytes. The
planner holds 2-byte activations (arena = the bytes of the live int16
tensors), the header says the buffer types, and a bad int16 model gets one
clear error.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mcuforge import reference
from mcuforge.tools import hostrun
from mcuforge.config import BuildConfig
from mcuforge.ir import McuforgeError
from mcuforge.pipeline import compile_model

pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
from mcuforge.tflite_writer import build_model  # noqa: E402
from marks import needs_qemu  # noqa: E402
from test_int16_seanet import SEANET, _csv, _files  # noqa: E402
from test_tflite import tflm_outputs  # noqa: E402

N_INPUTS = 3


class Model16:
    """A list of tensors and operators for build_model, with 16x8 helpers."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.tensors: list[dict] = []
        self.ops: list[tuple] = []

    def tensor(self, shape, dtype="int16", scale=None, zp=0, data=None, qdim=0) -> int:
        self.tensors.append(dict(shape=shape, dtype=dtype, scale=scale, zp=zp, data=data, qdim=qdim,
                                 name=f"t{len(self.tensors)}"))
        return len(self.tensors) - 1

    def act(self, shape, scale) -> int:
        return self.tensor(shape, "int16", np.float32(scale), 0)

    def weights(self, shape, channels: int, axis: int) -> tuple[int, np.ndarray]:
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        scales = np.float32(np.exp2(self.rng.uniform(-9, -6, channels)))
        return self.tensor(shape, "int8", scales, np.zeros(channels, np.int64), w, axis), scales

    def bias(self, channels: int, in_scale: float, w_scales: np.ndarray) -> int:
        real = self.rng.uniform(-0.5, 0.5, channels)
        q = np.round(real / (in_scale * w_scales.astype(np.float64))).astype(np.int64)
        return self.tensor((channels,), "int64", (in_scale * w_scales.astype(np.float64)).astype(np.float32),
                           np.zeros(channels, np.int64), q)

    def op(self, name, opt, opts, ins, outs) -> None:
        self.ops.append((name, opt, opts, list(ins), list(outs)))

    def bytes(self, inputs, outputs) -> bytes:
        return build_model(self.tensors, self.ops, inputs, outputs)


def chain_model(seed: int) -> bytes:
    """int8 -> QUANTIZE -> int16 DEPTHWISE (x2) -> MAX_POOL -> RESHAPE -> FULLY_CONNECTED -> QUANTIZE -> int8."""
    m = Model16(seed)
    s_in = np.float32(0.04)
    x8 = m.tensor((1, 6, 7, 5), "int8", s_in, 3)
    s16 = np.float32(4.0 / 32768)
    x = m.act((1, 6, 7, 5), s16)
    m.op("QUANTIZE", None, {}, [x8], [x])
    w, ws = m.weights((1, 3, 3, 10), 10, 3)
    b = m.bias(10, float(s16), ws)
    s_dw = np.float32(6.0 / 32768)
    y = m.act((1, 6, 7, 10), s_dw)
    m.op("DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions",
         dict(padding=0, strideH=1, strideW=1, depthMultiplier=2, dilationHFactor=1, dilationWFactor=1), [x, w, b], [y])
    p = m.act((1, 3, 4, 10), s_dw)
    m.op("MAX_POOL_2D", "Pool2DOptions", dict(padding=0, strideH=2, strideW=2, filterHeight=2, filterWidth=2),
         [y], [p])
    shape = m.tensor((2,), "int32", data=np.array([1, 120], np.int32))
    r = m.act((1, 120), s_dw)
    m.op("RESHAPE", "ReshapeOptions", dict(newShape=[1, 120]), [p, shape], [r])
    fw, fws = m.weights((12, 120), 1, 0)
    fw_t = m.tensors[fw]
    fw_t["scale"], fw_t["zp"] = fws[:1], np.zeros(1, np.int64)  # per tensor, as TFLite's converter writes FC
    fb = m.bias(12, float(s_dw), fws[:1].repeat(12))
    m.tensors[fb]["scale"] = m.tensors[fb]["scale"][:1]
    m.tensors[fb]["zp"] = np.zeros(1, np.int64)
    f = m.act((1, 12), np.float32(3.0 / 32768))
    m.op("FULLY_CONNECTED", "FullyConnectedOptions", dict(), [r, fw, fb], [f])
    out = m.tensor((1, 12), "int8", np.float32(0.02), -5)
    m.op("QUANTIZE", None, {}, [f], [out])
    return m.bytes([x8], [out])


def residual_model(seed: int) -> bytes:
    """int16: CONV 1x1 + ReLU, ADD, STRIDED_SLICE to (1, 1, 1, C), SUB broadcast, CONCATENATION, LEAKY_RELU."""
    m = Model16(seed)
    s_x = np.float32(2.0 / 32768)
    x = m.act((1, 5, 6, 8), s_x)
    w, ws = m.weights((8, 1, 1, 8), 8, 0)
    b = m.bias(8, float(s_x), ws)
    y = m.act((1, 5, 6, 8), np.float32(1.0 / 32768))
    m.op("CONV_2D", "Conv2DOptions", dict(padding=1, strideH=1, strideW=1, fusedActivationFunction=1,
                                          dilationHFactor=1, dilationWFactor=1), [x, w, b], [y])
    z = m.act((1, 5, 6, 8), np.float32(3.0 / 32768))
    m.op("ADD", "AddOptions", dict(), [x, y], [z])
    begin = m.tensor((4,), "int32", data=np.array([0, 2, 3, 0], np.int32))
    end = m.tensor((4,), "int32", data=np.array([1, 3, 4, 8], np.int32))
    strides = m.tensor((4,), "int32", data=np.array([1, 1, 1, 1], np.int32))
    s = m.act((1, 1, 1, 8), s_x)
    m.op("STRIDED_SLICE", "StridedSliceOptions", dict(), [x, begin, end, strides], [s])
    d = m.act((1, 5, 6, 8), np.float32(4.0 / 32768))
    m.op("SUB", "SubOptions", dict(), [z, s], [d])
    e = m.act((1, 5, 6, 8), np.float32(4.0 / 32768))
    m.op("LEAKY_RELU", "LeakyReluOptions", dict(alpha=0.2), [d], [e])
    c = m.act((1, 5, 6, 16), np.float32(4.0 / 32768))
    m.op("CONCATENATION", "ConcatenationOptions", dict(axis=3), [d, e], [c])
    return m.bytes([x], [c])


def pool_mul_model(seed: int) -> bytes:
    """int16: AVERAGE_POOL_2D (SAME, windows over the edge), MUL of two activations, MUL broadcast with a
    STRIDED_SLICE to (1, 1, 1, C)."""
    m = Model16(seed)
    s_x = np.float32(2.0 / 32768)
    x = m.act((1, 7, 6, 4), s_x)
    a = m.act((1, 4, 3, 4), s_x)
    m.op("AVERAGE_POOL_2D", "Pool2DOptions", dict(padding=0, strideH=2, strideW=2, filterHeight=3, filterWidth=2),
         [x], [a])
    sq = m.act((1, 4, 3, 4), np.float32(3.0 / 32768))
    m.op("MUL", "MulOptions", dict(), [a, a], [sq])
    begin = m.tensor((4,), "int32", data=np.array([0, 1, 1, 0], np.int32))
    end = m.tensor((4,), "int32", data=np.array([1, 2, 2, 4], np.int32))
    strides = m.tensor((4,), "int32", data=np.array([1, 1, 1, 1], np.int32))
    s = m.act((1, 1, 1, 4), s_x)
    m.op("STRIDED_SLICE", "StridedSliceOptions", dict(), [a, begin, end, strides], [s])
    out = m.act((1, 4, 3, 4), np.float32(4.0 / 32768))
    m.op("MUL", "MulOptions", dict(), [sq, s], [out])
    return m.bytes([x], [out])


def random_inputs(plan, n: int, seed: int) -> np.ndarray:
    t = plan.graph.tensors[plan.input]
    info = np.iinfo(t.dtype)
    rng = np.random.default_rng(seed)
    return rng.integers(info.min, info.max + 1, (n,) + t.shape[1:], dtype=np.int64).astype(t.dtype)


MODELS = {"chain": chain_model, "residual": residual_model, "pool_mul": pool_mul_model}
KERNELS = {"chain": {"requantize_s8_s16", "depthwise_conv2d_s16", "max_pool_s16", "fully_connected_s16",
                     "requantize_s16_s8"},
           "residual": {"conv2d_s16", "add_s16", "strided_slice_s16", "sub_s16", "leaky_relu_s16", "concat_s16"},
           "pool_mul": {"avg_pool_s16", "mul_s16", "strided_slice_s16"}}


@pytest.fixture(scope="module", params=sorted(MODELS))
def built(request, tmp_path_factory):
    key = request.param
    d = tmp_path_factory.mktemp(key)
    data = MODELS[key](seed=len(key))
    path = d / f"{key}.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name=key), d / "out")
    xs = random_inputs(plan, N_INPUTS, seed=len(key) + 1)
    return key, plan, d, xs, tflm_outputs(data, xs)


def test_built_model_equals_tflm(built):
    key, plan, d, xs, want = built
    assert any(s.kernel.endswith("s16") for s in plan.steps)
    exe = hostrun.build(plan, d / "out", d / "build")
    got = hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1)
    for i, x in enumerate(xs):
        ref = reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1)
        assert np.array_equal(ref, want[i]), f"{key} input {i}: reference differs from TFLM"
        assert np.array_equal(got[i], want[i]), f"{key} input {i}: host C differs from TFLM"
    assert len(np.unique(want)) > 8  # not all saturated: the arithmetic is exercised


def test_built_model_kernels_and_header(built):
    key, plan, d, _, _ = built
    assert {s.kernel for s in plan.steps} == KERNELS[key]
    header = (d / "out" / f"{key}.h").read_text()
    ctype = "int8_t" if key == "chain" else "int16_t"
    assert f"#define {key.upper()}_INPUT_TYPE {ctype}" in header and f"#define {key.upper()}_OUTPUT_TYPE {ctype}" in header
    assert f"{ctype} *{key}_input(void);" in header and f"{ctype} *{key}_output(void);" in header
    # 2-byte activations: the arena holds at least the largest step's int16 tensors, each 2 bytes a value
    g = plan.graph
    biggest = max(sum(g.tensors[t].nbytes for t in dict.fromkeys(s.inputs + s.outputs)) for s in plan.steps)
    assert plan.arena_size >= biggest
    assert all(g.tensors[t].nbytes == 2 * g.tensors[t].size for s in plan.steps for t in s.outputs
               if g.tensors[t].dtype == "int16")


@needs_qemu
def test_built_model_on_cortex_m4(built):
    from mcuforge.tools import qemu

    key, plan, d, xs, want = built
    elf = qemu.build(plan, d / "out", d / "m4", target="qemu-cortex-m4")
    got, _ = qemu.run(plan, elf, xs, target="qemu-cortex-m4")
    assert np.array_equal(got[0].reshape(len(xs), -1), want)


@needs_qemu
@pytest.mark.parametrize("name,kernels", [("conv0", "portable"), ("transpose_conv3", "portable"),
                                          ("leaky_relu3", "portable"), ("conv0", "arm-dsp"), ("conv9", "arm-dsp"),
                                          ("conv15", "arm-dsp")])
def test_seanet_sample_on_cortex_m4(name, kernels, tmp_path):
    """Seanet models on Cortex-M4 under QEMU equal TFLM's goldens; with arm-dsp
    the convolutions run the SMLAD 16x8 kernel."""
    if not SEANET.is_dir():
        pytest.skip(f"TFLM's seanet models are not in {SEANET} (../shared/models/seanet is absent)")
    from mcuforge.tools import qemu

    model, inputs, golden = _files(name)
    plan = compile_model(model, BuildConfig(name="m", kernels=kernels), tmp_path / "out")
    assert ("mcf_dsp_conv2d_s16(" in (tmp_path / "out" / "m.c").read_text()) == (kernels == "arm-dsp")
    x = _csv(inputs[-1], np.int16).reshape(plan.graph.tensors[plan.input].shape)
    elf = qemu.build(plan, tmp_path / "out", tmp_path / "m4", target="qemu-cortex-m4")
    got, _ = qemu.run(plan, elf, x[None], target="qemu-cortex-m4")
    assert np.array_equal(got[0].reshape(-1), _csv(golden, np.int16))


def test_int16_refusals(tmp_path):
    """An int16 activation with a zero point, an op without a 16x8 kernel, a streamed int16 input: one clear error."""
    m = Model16(0)
    x = m.tensor((1, 4, 4, 3), "int16", np.float32(0.001), 5)
    y = m.tensor((1, 4, 4, 3), "int16", np.float32(0.001), 5)
    m.op("LEAKY_RELU", "LeakyReluOptions", dict(alpha=0.1), [x], [y])
    path = tmp_path / "zp.tflite"
    path.write_bytes(m.bytes([x], [y]))
    with pytest.raises(McuforgeError, match="int16 with zero point 5: 16x8 models quantize activations symmetrically"):
        compile_model(path, BuildConfig(name="zp"), tmp_path / "zp")
    assert not (tmp_path / "zp").exists()

    m = Model16(0)
    x = m.act((1, 4, 4, 3), np.float32(0.001))
    axes = m.tensor((2,), "int32", data=np.array([1, 2], np.int32))
    y = m.act((1, 1, 1, 3), np.float32(0.001))
    m.op("MEAN", "ReducerOptions", dict(keepDims=True), [x, axes], [y])
    path = tmp_path / "mean.tflite"
    path.write_bytes(m.bytes([x], [y]))
    with pytest.raises(McuforgeError, match=r"have no 16x8 kernel: MEAN_0 \(mean\)"):
        compile_model(path, BuildConfig(name="mean"), tmp_path / "mean")
    assert not (tmp_path / "mean").exists()

    path = tmp_path / "patch.tflite"
    path.write_bytes(patch_model(1))
    with pytest.raises(McuforgeError, match="streaming a 16x8 model's int16 input is not supported"):
        compile_model(path, BuildConfig(name="c", schedule="patch", input_stream=True), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_built_model_arm_dsp(built, tmp_path):
    """--kernels arm-dsp on a 16x8 model: conv and fully connected layers run
    the SMLAD 16x8 kernels (mcf_dsp_s16.c), the others the portable ones;
    same bytes as TFLM on the host."""
    key, _, d, xs, want = built
    plan = compile_model(d / f"{key}.tflite", BuildConfig(name=key, kernels="arm-dsp"), tmp_path / "out")
    source = (tmp_path / "out" / f"{key}.c").read_text()
    dsp = {"chain": "mcf_dsp_fully_connected_s16(", "residual": "mcf_dsp_conv2d_s16("}
    if key in dsp:
        assert dsp[key] in source
    exe = hostrun.build(plan, tmp_path / "out", tmp_path / "build")
    assert np.array_equal(hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1), want)


@pytest.mark.parametrize("scale", [2.0 ** -12, 2.0 ** -11, 3.1e-4, 1.7e-3])
def test_logistic_tanh_every_value(scale, tmp_path):
    """LOGISTIC then TANH on all 65536 int16 values (power-of-two and general
    input scales): reference and host C equal TFLM."""
    m = Model16(0)
    x = m.act((1, 1, 256, 256), np.float32(scale))
    y = m.act((1, 1, 256, 256), np.float32(2.0 ** -15))
    z = m.act((1, 1, 256, 256), np.float32(2.0 ** -15))
    m.op("LOGISTIC", None, {}, [x], [y])
    m.op("TANH", None, {}, [y], [z])
    data = m.bytes([x], [z])
    path = tmp_path / "sig.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name="sig"), tmp_path / "out")
    assert [s.kernel for s in plan.steps] == ["logistic_s16", "tanh_s16"]
    xs = np.arange(-32768, 32768, dtype=np.int16).reshape(1, 1, 256, 256)
    want = tflm_outputs(data, xs)[0]
    assert np.array_equal(reference.run(plan, xs[0]).outputs[plan.outputs[0]].reshape(-1), want)
    exe = hostrun.build(plan, tmp_path / "out", tmp_path / "build")
    assert np.array_equal(hostrun.run(plan, exe, xs)[0].reshape(-1), want)
    assert len(np.unique(want)) > 1000


def test_sigmoid_table_is_tflms():
    """The table the 16-bit LOGISTIC/TANH kernels interpolate in, measured
    again from the tflite_micro interpreter, equals the one mcuforge ships."""
    import importlib.util

    from mcuforge.kernels.s16 import SIGMOID_TABLE
    from mcuforge.kernels import RUNTIME_SRC_DIR

    script = Path(__file__).resolve().parents[1] / "scripts" / "sigmoid_table_s16.py"
    spec = importlib.util.spec_from_file_location("sigmoid_table_s16", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    measured = module.measure()
    assert measured == SIGMOID_TABLE.tolist()
    c = (RUNTIME_SRC_DIR / "mcf_s16_sigmoid.c").read_text()
    body = c[c.index("sigmoid_table[256] = {") + len("sigmoid_table[256] = {"):c.index("};")]
    assert [int(v) for v in body.replace(",", " ").split()] == measured


@pytest.mark.parametrize("scale,beta,cols", [(1e-3, 1.0, 10), (2.0 ** -10, 1.0, 33), (3e-4, 0.5, 7), (5e-3, 1.0, 100)])
def test_softmax_equals_tflm(scale, beta, cols, tmp_path):
    """16x8 SOFTMAX (the exp and 1/(1+x) tables built as TFLM's gen_lut) on
    ~4000 random values with large and small spreads: reference and host C equal TFLM."""
    rows = 4000 // cols
    m = Model16(0)
    x = m.act((1, rows, cols), np.float32(scale))
    y = m.act((1, rows, cols), np.float32(2.0 ** -15))
    m.op("SOFTMAX", "SoftmaxOptions", dict(beta=beta), [x], [y])
    data = m.bytes([x], [y])
    path = tmp_path / "softmax.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name="sm"), tmp_path / "out")
    assert [s.kernel for s in plan.steps] == ["softmax_s16"]
    rng = np.random.default_rng(cols)
    xs = rng.integers(-32768, 32768, (2, rows, cols)).astype(np.int16)
    xs[1] //= 64  # small differences: the tables' every region
    want = tflm_outputs(data, xs)
    exe = hostrun.build(plan, tmp_path / "out", tmp_path / "build")
    got = hostrun.run(plan, exe, xs)[0].reshape(2, -1)
    for i in range(2):
        assert np.array_equal(reference.run(plan, xs[i]).outputs[plan.outputs[0]].reshape(-1), want[i])
        assert np.array_equal(got[i], want[i])


def patch_model(seed: int) -> bytes:
    """int16, 24x24: CONV 3x3 + LEAKY_RELU + DEPTHWISE 3x3 / 2 + ADD of a 1x1 CONV branch + MAX_POOL, then
    RESHAPE and FULLY_CONNECTED: a stage that can run on patches (a residual, row-by-row elementwise)."""
    m = Model16(seed)
    s = np.float32(2.0 / 32768)
    x = m.act((1, 24, 24, 4), s)
    w, ws = m.weights((8, 3, 3, 4), 8, 0)
    b = m.bias(8, float(s), ws)
    c1 = m.act((1, 24, 24, 8), np.float32(3.0 / 32768))
    m.op("CONV_2D", "Conv2DOptions", dict(padding=0, strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1),
         [x, w, b], [c1])
    a1 = m.act((1, 24, 24, 8), np.float32(3.0 / 32768))
    m.op("LEAKY_RELU", "LeakyReluOptions", dict(alpha=0.1), [c1], [a1])
    dw, dws = m.weights((1, 3, 3, 8), 8, 3)
    db = m.bias(8, 3.0 / 32768, dws)
    d1 = m.act((1, 12, 12, 8), np.float32(4.0 / 32768))
    m.op("DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions", dict(padding=0, strideH=2, strideW=2, depthMultiplier=1,
                                                             dilationHFactor=1, dilationWFactor=1), [a1, dw, db], [d1])
    pw, pws = m.weights((8, 1, 1, 8), 8, 0)
    pb = m.bias(8, 4.0 / 32768, pws)
    p1 = m.act((1, 12, 12, 8), np.float32(4.0 / 32768))
    m.op("CONV_2D", "Conv2DOptions", dict(padding=1, strideH=1, strideW=1, dilationHFactor=1, dilationWFactor=1),
         [d1, pw, pb], [p1])
    r = m.act((1, 12, 12, 8), np.float32(6.0 / 32768))
    m.op("ADD", "AddOptions", dict(), [d1, p1], [r])
    q = m.act((1, 6, 6, 8), np.float32(6.0 / 32768))
    m.op("MAX_POOL_2D", "Pool2DOptions", dict(padding=1, strideH=2, strideW=2, filterHeight=2, filterWidth=2), [r], [q])
    shape = m.tensor((2,), "int32", data=np.array([1, 288], np.int32))
    f = m.act((1, 288), np.float32(6.0 / 32768))
    m.op("RESHAPE", "ReshapeOptions", dict(newShape=[1, 288]), [q, shape], [f])
    fw, fws = m.weights((10, 288), 1, 0)
    fb = m.bias(10, 6.0 / 32768, fws[:1].repeat(10))
    m.tensors[fb]["scale"], m.tensors[fb]["zp"] = m.tensors[fb]["scale"][:1], np.zeros(1, np.int64)
    out = m.act((1, 10), np.float32(8.0 / 32768))
    m.op("FULLY_CONNECTED", "FullyConnectedOptions", dict(), [f, fw, fb], [out])
    return m.bytes([x], [out])


@pytest.mark.parametrize("grid", [2, 3])
def test_patch_schedule_int16(grid, tmp_path):
    """A 16x8 model on patches (int16 patch buffers, the tile copy moving
    bytes): reference, host C and Cortex-M4 equal TFLM, in a smaller arena
    than layer by layer."""
    data = patch_model(5)
    path = tmp_path / "patch.tflite"
    path.write_bytes(data)
    layer = compile_model(path, BuildConfig(name="pt"), tmp_path / "layer")
    plan = compile_model(path, BuildConfig(name="pt", schedule="patch", patch_grid=grid), tmp_path / "out")
    assert plan.patch is not None and plan.patch.grid == grid and plan.arena_size < layer.arena_size
    rng = np.random.default_rng(grid)
    xs = rng.integers(-32768, 32768, (3, 24, 24, 4)).astype(np.int16)
    want = tflm_outputs(data, xs)
    exe = hostrun.build(plan, tmp_path / "out", tmp_path / "build")
    got = hostrun.run(plan, exe, xs)[0].reshape(3, -1)
    for i in range(3):
        assert np.array_equal(reference.run(plan, xs[i], poison=i).outputs[plan.outputs[0]].reshape(-1), want[i])
        assert np.array_equal(got[i], want[i])
    assert len(np.unique(want)) > 8
    if grid == 2 and not qemu_missing():
        from mcuforge.tools import qemu

        elf = qemu.build(plan, tmp_path / "out", tmp_path / "m4", target="qemu-cortex-m4")
        assert np.array_equal(qemu.run(plan, elf, xs, target="qemu-cortex-m4")[0][0].reshape(3, -1), want)


def qemu_missing() -> str:
    from mcuforge.tools import qemu

    return qemu.tools_missing_reason()
