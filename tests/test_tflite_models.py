"""Models as users bring them, each built here with mcuforge's own TFLite
writer (TensorFlow is not a dependency) the way the stock TFLite converter
lays them out, compiled, and compared byte for byte with TFLM's reference
kernels (the ``tflite_micro`` interpreter): the NumPy reference and the
generated C built with the host gcc (and a sample under QEMU Cortex-M4).

Covered: float32 inputs and outputs around a full-integer model (QUANTIZE
first, DEQUANTIZE last); the rank-1 broadcast ADD a residual on a pooled map
becomes (RESHAPE -> (C,), ADD [1,H,W,C] + [C]); the shape arithmetic of a
dynamic-batch Keras export (SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE),
folded at compile time; a 1-D model (Conv1D as EXPAND_DIMS / CONV_2D /
SQUEEZE, GlobalAveragePooling1D as MEAN over axis 1); MEAN over channels;
REDUCE_MAX (GlobalMaxPooling2D); TRANSPOSE (Permute); PRELU; a standalone
BatchNormalization (MUL and ADD by per-channel constants).
"""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge import reference
from mcuforge.tools import hostrun
from mcuforge.tools.compare import random_inputs
from mcuforge.config import BuildConfig
from mcuforge.pipeline import compile_model, plan_model
from mcuforge.quantize import dequantize_values, quantize_values
from mcuforge.tflite_writer import Net, build_float_io, build_model
from marks import needs_qemu
from test_tflite import tflm_outputs

runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")


# ------------------------------------------------------------------ models

def _ints(n: Net, values) -> int:
    return n.const(np.asarray(values, np.int32), "int32")


def _vector_add() -> bytes:
    """x + Conv1x1(GlobalAveragePooling2D(keepdims=True)(x)): RESHAPE -> (C,), ADD [1,H,W,C] + [C]."""
    n = Net(21, (1, 5, 6, 8))
    x = n.conv(0, 8, (3, 3), act=1)
    g = n.mean(x, keep_dims=True)
    g = n.conv(g, 8, (1, 1))
    v = n.reshape(g, (8,))
    y = n.add(x, v, act=1)
    w = n.reshape(n.conv(n.mean(y, keep_dims=True), 8, (1, 1)), (8,))  # and the other operand order
    return n.build(n.binary("ADD", w, y, n.scale(y) * 1.2))


def _dynamic_batch() -> bytes:
    """Flatten of a Keras model with batch None: SHAPE -> STRIDED_SLICE -> PACK(batch, -1) -> RESHAPE."""
    n = Net(22, (1, 6, 5, 3))
    x = n.conv(0, 4, (3, 3), stride=2, act=1)
    shape = len(n.tensors)
    n.tensors.append(dict(shape=(4,), dtype="int32", name="shape"))
    n.ops.append(("SHAPE", "ShapeOptions", dict(outType=2), [x], [shape]))
    batch = len(n.tensors)
    n.tensors.append(dict(shape=(), dtype="int32", name="batch"))
    n.ops.append(("STRIDED_SLICE", "StridedSliceOptions", dict(shrinkAxisMask=1),
                  [shape, _ints(n, [0]), _ints(n, [1]), _ints(n, [1])], [batch]))
    packed = len(n.tensors)
    n.tensors.append(dict(shape=(2,), dtype="int32", name="packed"))
    n.ops.append(("PACK", "PackOptions", dict(valuesCount=2, axis=0), [batch, _ints(n, -1)], [packed]))
    flat = n.same_quant(x, (1, int(np.prod(n.shape(x)))))
    n.ops.append(("RESHAPE", None, {}, [x, packed], [flat]))
    return n.build(n.fc(flat, 6))


def _one_d() -> bytes:
    """Conv1D (EXPAND_DIMS, CONV_2D, SQUEEZE) and GlobalAveragePooling1D (MEAN over axis 1 of (1, L, C))."""
    n = Net(23, (1, 24, 3))
    e = n.op("EXPAND_DIMS", None, {}, [0, _ints(n, [1])], (1, 1, 24, 3))
    c = n.conv(e, 8, (1, 5), act=1)
    s = n.op("SQUEEZE", "SqueezeOptions", dict(squeezeDims=[1]), [c], (1, 24, 8))
    m = n.act((1, 8), n.scale(s) * 0.6)
    n.ops.append(("MEAN", "ReducerOptions", dict(keepDims=False), [s, _ints(n, [1])], [m]))
    return n.build(n.fc(m, 4))


def _reductions() -> bytes:
    """MEAN over channels (keep dims), REDUCE_MAX over one axis of it, GlobalMaxPooling2D (REDUCE_MAX over H, W)."""
    n = Net(24, (1, 6, 7, 5))
    x = n.conv(0, 6, (3, 3))
    m = n.act((1, 6, 7, 1), n.scale(x) * 0.7)
    n.ops.append(("MEAN", "ReducerOptions", dict(keepDims=True), [x, _ints(n, [3])], [m]))
    r = n.same_quant(m, (1, 6, 1))
    n.ops.append(("REDUCE_MAX", "ReducerOptions", dict(keepDims=False), [m, _ints(n, [2])], [r]))
    y = n.same_quant(x, (1, 6))
    n.ops.append(("REDUCE_MAX", "ReducerOptions", dict(keepDims=False), [x, _ints(n, [1, 2])], [y]))
    a, b = n.fc(y, 3), n.fc(n.reshape(r, (1, 6)), 3)
    return n.build(n.binary("ADD", a, b, max(n.scale(a), n.scale(b)) * 1.5))


def _mean_height_channels() -> bytes:
    """MEAN over two axes that are not adjacent (height and channels)."""
    n = Net(29, (1, 5, 7, 6))
    x = n.conv(0, 6, (3, 3), act=1)
    m = n.act((1, 7), n.scale(x) * 0.5)
    n.ops.append(("MEAN", "ReducerOptions", dict(keepDims=False), [x, _ints(n, [1, -1])], [m]))
    return n.build(n.fc(m, 5))


def _transpose_prelu() -> bytes:
    """Permute((2, 1, 3)) as TRANSPOSE, PRELU with a per-channel alpha."""
    n = Net(25, (1, 5, 7, 6))
    x = n.conv(0, 6, (3, 3))
    t = n.op("TRANSPOSE", None, {}, [x, _ints(n, [0, 2, 1, 3])], (1, 7, 5, 6))
    alpha = n.const(n.rng.integers(-100, 127, (1, 1, 6)).astype(np.int8), scale=np.float32(0.3 / 127), zp=0)
    p = n.act((1, 7, 5, 6), n.scale(t) * 0.9)
    n.ops.append(("PRELU", None, {}, [t, alpha], [p]))
    return n.build(n.conv(p, 4, (1, 1)))


def _batch_norm() -> bytes:
    """A BatchNormalization on the input: MUL and ADD by per-channel int8 constants."""
    n = Net(26, (1, 6, 6, 4))
    gamma = n.const(n.rng.integers(-128, 128, 4).astype(np.int8), scale=np.float32(0.02), zp=-9)
    beta = n.const(n.rng.integers(-128, 128, 4).astype(np.int8), scale=np.float32(0.01), zp=5)
    y = n.binary("MUL", 0, gamma, n.scale(0) * 1.3, zp=2)
    y = n.binary("ADD", beta, y, n.scale(y) * 1.1, zp=-3)  # the constant first
    s = n.binary("SUB", y, n.const(n.rng.integers(-128, 128, (1, 1, 4)).astype(np.int8),
                                   scale=np.float32(0.015), zp=1), n.scale(y))
    return n.build(n.conv(s, 5, (3, 3)))


def _float_io() -> bytes:
    """A full-integer model with the converter's default float32 input and output."""
    n = Net(27, (1, 8, 8, 3), in_scale=0.02, in_zp=-11)
    x = n.conv(0, 8, (3, 3), stride=2, act=1)
    x = n.mean(x, keep_dims=False)
    return build_float_io(n, n.fc(x, 5))


MODELS = {"vector_add": _vector_add, "dynamic_batch": _dynamic_batch, "one_d": _one_d,
          "reductions": _reductions, "mean_height_channels": _mean_height_channels, "transpose_prelu": _transpose_prelu, "batch_norm": _batch_norm,
          "float_io": _float_io}


# ------------------------------------------------------------------ oracle

def inputs_for(plan, name: str, count: int = 10) -> np.ndarray:
    """int8 inputs; for the float-I/O model, float32 values over the input's range and beyond."""
    if name != "float_io":
        return random_inputs(plan, count, seed=len(name))
    q = plan.graph.tensors[plan.input].quant
    rng = np.random.default_rng(7)
    shape = (count,) + plan.graph.tensors[plan.input].shape[1:]
    return (rng.uniform(-1.4, 1.4, shape) * 128 * float(q.scale[0])).astype(np.float32)


def as_compiled(plan, name: str, xs: np.ndarray) -> np.ndarray:
    """What the compiled model takes: float inputs quantized as TFLM's QUANTIZE does."""
    return quantize_values(xs, plan.graph.tensors[plan.input].quant) if name == "float_io" else xs


def as_source(plan, name: str, ys: np.ndarray) -> np.ndarray:
    """What TFLM gives: int8 outputs dequantized as TFLM's DEQUANTIZE does for the float-I/O model."""
    return dequantize_values(ys, plan.graph.tensors[plan.outputs[0]].quant) if name == "float_io" else ys


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request, tmp_path_factory):
    name = request.param
    data = MODELS[name]()
    path = tmp_path_factory.mktemp(name) / f"{name}.tflite"
    path.write_bytes(data)
    plan = plan_model(path, BuildConfig(name=name))
    xs = inputs_for(plan, name)
    return name, path, plan, xs, tflm_outputs(data, xs)


def test_reference_equals_tflm(model):
    name, _, plan, xs, want = model
    q = as_compiled(plan, name, xs)
    got = np.stack([reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1)
                    for i, x in enumerate(q)])
    got = as_source(plan, name, got)
    assert got.dtype == want.dtype
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), \
        f"{name}: {int(np.sum(got != want))} values differ from TFLM"
    assert len(np.unique(want)) > 3, f"{name}: outputs are nearly constant; the test would exercise little"


def test_c_equals_tflm(model, tmp_path):
    name, path, _, xs, want = model
    plan = compile_model(path, BuildConfig(name=name), tmp_path / "gen")
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    got = hostrun.run(plan, exe, as_compiled(plan, name, xs))[0].reshape(len(xs), -1)
    got = as_source(plan, name, got)
    assert np.array_equal(got.view(np.uint8), want.view(np.uint8)), f"{name}: C differs from TFLM"


@needs_qemu
@pytest.mark.parametrize("name", ["batch_norm", "one_d"])
def test_cortex_m4_under_qemu_equals_tflm(name, tmp_path):
    from mcuforge.tools import qemu

    data = MODELS[name]()
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name=name), tmp_path / "gen")
    xs = inputs_for(plan, name, 4)
    elf = qemu.build(plan, tmp_path / "gen", tmp_path / "qemu", "qemu-cortex-m4")
    got = qemu.run(plan, elf, xs, "qemu-cortex-m4")[0][0].reshape(len(xs), -1)
    assert np.array_equal(got, tflm_outputs(data, xs))


def test_shape_arithmetic_is_folded():
    from mcuforge.frontends.tflite import load_bytes

    g = load_bytes(_dynamic_batch(), source="dynamic_batch.tflite")
    assert [n.op for n in g.nodes] == ["conv2d", "reshape", "fully_connected"]


def test_float_io_maps_to_the_int8_ends():
    from mcuforge.frontends.tflite import load_bytes

    g = load_bytes(_float_io(), source="float_io.tflite")
    assert g.tensors[g.inputs[0]].dtype == "int8" and g.tensors[g.outputs[0]].dtype == "int8"
    assert "QUANTIZE_0" not in {n.name for n in g.nodes}


# ------------------------------------------------------------------ several inputs and outputs

def _two_inputs() -> bytes:
    """Two inputs (an image and a per-channel vector, broadcast over it) and two outputs."""
    n = Net(28, (1, 6, 6, 3))
    x = n.conv(0, 8, (3, 3), act=1)
    v = n.act((1, 1, 1, 8), 0.04, 3, name="input1")
    y = n.binary("ADD", x, v, n.scale(x) * 1.4)
    a = n.fc(n.mean(y, keep_dims=False), 4)
    b = n.conv(y, 2, (1, 1))
    return build_model(n.tensors, n.ops, [0, v], [a, b])


def tflm_run_many(data: bytes, xs: list[np.ndarray], outputs: int) -> list[np.ndarray]:
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=1 << 20)
    outs: list[list[np.ndarray]] = [[] for _ in range(outputs)]
    for i in range(len(xs[0])):
        for k, x in enumerate(xs):
            interpreter.set_input(np.ascontiguousarray(x[i][None]), k)
        interpreter.invoke()
        for k in range(outputs):
            outs[k].append(np.asarray(interpreter.get_output(k)).reshape(-1).copy())
    return [np.stack(o) for o in outs]


def test_two_inputs_two_outputs_equal_tflm(tmp_path):
    data = _two_inputs()
    path = tmp_path / "two.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name="two"), tmp_path / "gen")
    rng = np.random.default_rng(3)
    xs = [rng.integers(-128, 128, (8,) + plan.graph.tensors[i].shape[1:]).astype(np.int8) for i in plan.inputs]
    want = tflm_run_many(data, xs, 2)
    record = np.concatenate([x.reshape(len(x), -1) for x in xs], axis=1)  # the inputs one after the other
    for i in range(len(record)):
        got = reference.run(plan, record[i], poison=i).outputs
        for k, o in enumerate(plan.outputs):
            assert np.array_equal(got[o].reshape(-1), want[k][i]), f"input {i}, output {k}"
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    got = hostrun.run(plan, exe, record)
    for k in range(2):
        assert np.array_equal(got[k].reshape(len(record), -1), want[k]), f"C output {k} differs from TFLM"
    header = (tmp_path / "gen" / "two.h").read_text()
    for line in ("#define TWO_NUM_INPUTS 2", "#define TWO_INPUT1_SIZE 8", "int8_t *two_input1(void);",
                 "int8_t *two_output1(void);", "#define TWO_OUTPUT1_SIZE 72"):
        assert line in header, line
    assert len(np.unique(want[0])) > 2 and len(np.unique(want[1])) > 3


@needs_qemu
def test_two_inputs_cortex_m4_under_qemu(tmp_path):
    from mcuforge.tools import qemu

    data = _two_inputs()
    path = tmp_path / "two.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name="two"), tmp_path / "gen")
    rng = np.random.default_rng(4)
    xs = [rng.integers(-128, 128, (3,) + plan.graph.tensors[i].shape[1:]).astype(np.int8) for i in plan.inputs]
    want = tflm_run_many(data, xs, 2)
    elf = qemu.build(plan, tmp_path / "gen", tmp_path / "qemu", "qemu-cortex-m4")
    got = qemu.run(plan, elf, np.concatenate([x.reshape(3, -1) for x in xs], axis=1), "qemu-cortex-m4")[0]
    for k in range(2):
        assert np.array_equal(got[k].reshape(3, -1), want[k])


def test_two_inputs_through_the_python_api_and_the_cli(tmp_path, capsys):
    """`CompiledModel.run` takes one array per input (a list), `mcuforge run --input x.npz` an .npz with one
    array per input name; both give TFLM's outputs, and `--check` finds the C equal to the reference."""
    import mcuforge
    from mcuforge.tools.cli import main as cli_main

    data = _two_inputs()
    path = tmp_path / "two.tflite"
    path.write_bytes(data)
    model = mcuforge.compile(str(path), out=tmp_path / "gen", name="two")
    rng = np.random.default_rng(6)
    xs = [rng.integers(-128, 128, (4,) + model.plan.graph.tensors[i].shape[1:]).astype(np.int8)
          for i in model.plan.inputs]
    want = tflm_run_many(data, xs, 2)
    got = model.run(xs)
    assert all(np.array_equal(g.reshape(4, -1), w) for g, w in zip(got, want))
    np.savez(tmp_path / "x.npz", **dict(zip(model.plan.inputs, xs)))
    assert cli_main(["run", str(tmp_path / "gen"), "--input", str(tmp_path / "x.npz"), "--check",
                     "--output", str(tmp_path / "y.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "y.npy").reshape(4, -1), want[0])
    assert cli_main(["run", str(tmp_path / "gen"), "--input", str(tmp_path / "x.npz")[:-4] + "_missing.npz"]) == 2
    np.save(tmp_path / "one.npy", xs[0])
    assert cli_main(["run", str(tmp_path / "gen"), "--input", str(tmp_path / "one.npy")]) == 2
    assert "the model has 2 inputs" in capsys.readouterr().err


@pytest.mark.parametrize("axes,shape,keep", [([1], (1, 24, 5), False), ([3], (1, 4, 6, 9), True),
                                             ([1, 3], (1, 5, 3, 4), False), ([1, 2], (1, 6, 7, 5), True)])
def test_mean_keeping_the_quantization_equals_tflm(axes, shape, keep, tmp_path):
    """MEAN whose output has the input's scale and zero point (TFLM versions differ in the path they take)."""
    n = Net(3, shape)
    out_shape = tuple((1 if d in axes else s) for d, s in enumerate(shape) if keep or d not in axes)
    m = n.same_quant(0, out_shape)
    n.ops.append(("MEAN", "ReducerOptions", dict(keepDims=keep), [0, _ints(n, axes)], [m]))
    data = n.build(m)
    path = tmp_path / "mean.tflite"
    path.write_bytes(data)
    plan = plan_model(path, BuildConfig(name="mean"))
    xs = random_inputs(plan, 16, seed=1)
    got = np.stack([reference.run(plan, x).outputs[plan.outputs[0]].reshape(-1) for x in xs])
    assert np.array_equal(got, tflm_outputs(data, xs))


# ------------------------------------------------------------------ TILE (LiteRT as the oracle: TFLM has no TILE)

def _upsampling_keras3() -> bytes:
    """UpSampling2D((2, 3)) as Keras 3 writes it (tf.repeat along H, then W: EXPAND_DIMS-like RESHAPE to rank 5,
    TILE, RESHAPE), followed by a conv."""
    n = Net(30, (1, 3, 4, 5))
    x = n.conv(0, 4, (3, 3), act=1)
    r = n.reshape(x, (1, 3, 1, 4, 4))
    t = n.op("TILE", None, {}, [r, _ints(n, [1, 1, 2, 1, 1])], (1, 3, 2, 4, 4))
    h = n.reshape(t, (1, 6, 4, 4))
    r = n.reshape(h, (1, 6, 4, 1, 4))
    t = n.op("TILE", None, {}, [r, _ints(n, [1, 1, 1, 3, 1])], (1, 6, 4, 3, 4))
    w = n.reshape(t, (1, 6, 12, 4))
    w = n.op("TILE", None, {}, [w, _ints(n, [1, 1, 1, 2])], (1, 6, 12, 8))  # and a plain 4-D tile of channels
    return n.build(n.conv(w, 3, (3, 3), stride=2))


def test_tile_equals_litert(tmp_path):
    litert = pytest.importorskip("ai_edge_litert.interpreter")
    data = _upsampling_keras3()
    path = tmp_path / "up.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name="up"), tmp_path / "gen")
    assert [s.kernel for s in plan.steps].count("tile_s8") == 3
    xs = random_inputs(plan, 6, seed=3)
    interpreter = litert.Interpreter(model_content=data, experimental_op_resolver_type=(
        litert.OpResolverType.BUILTIN_REF))
    interpreter.allocate_tensors()
    want = []
    for x in xs:
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[None])
        interpreter.invoke()
        want.append(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).reshape(-1))
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    got = hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1)
    assert np.array_equal(got, np.stack(want))
    ref = np.stack([reference.run(plan, x).outputs[plan.outputs[0]].reshape(-1) for x in xs])
    assert np.array_equal(ref, got) and len(np.unique(got)) > 3


def test_float_ends_around_a_16x8_model(tmp_path):
    """The converter's float32 ends around a 16x8 model (QUANTIZE to int16 first, DEQUANTIZE of int16 last):
    the int16 model between them, TFLM's float outputs bit for bit."""
    from test_int16 import Model16

    m = Model16(12)
    xf = m.tensor((1, 5, 6, 4), "float32")
    s16 = np.float32(3.0 / 32768)
    x = m.act((1, 5, 6, 4), s16)
    m.op("QUANTIZE", None, {}, [xf], [x])
    w, ws = m.weights((1, 3, 3, 4), 4, 3)
    b = m.bias(4, float(s16), ws)
    y = m.act((1, 5, 6, 4), np.float32(2.0 / 32768))
    m.op("DEPTHWISE_CONV_2D", "DepthwiseConv2DOptions",
         dict(padding=0, strideH=1, strideW=1, depthMultiplier=1, dilationHFactor=1, dilationWFactor=1), [x, w, b], [y])
    yf = m.tensor((1, 5, 6, 4), "float32")
    m.op("DEQUANTIZE", None, {}, [y], [yf])
    data = m.bytes([xf], [yf])
    path = tmp_path / "f16.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name="f16"), tmp_path / "gen")
    tin, tout = plan.graph.tensors[plan.input], plan.graph.tensors[plan.outputs[0]]
    assert (tin.dtype, tout.dtype) == ("int16", "int16")
    xs = np.random.default_rng(2).uniform(-3.5, 3.5, (6, 5, 6, 4)).astype(np.float32)
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    got = hostrun.run(plan, exe, quantize_values(xs, tin.quant, "int16"))[0].reshape(len(xs), -1)
    got = dequantize_values(got, tout.quant)
    want = tflm_outputs(data, xs)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32)) and len(np.unique(want)) > 20
