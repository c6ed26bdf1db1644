"""Operators of MobileNetV3-class MCU models against TFLM, one operator per
model: HARD_SWISH, LOGISTIC, TANH, LEAKY_RELU, RELU, RELU6, QUANTIZE (int8
-> int8), MUL and SUB (same shapes, broadcast as in squeeze-and-excitation,
and with a scalar constant), MAXIMUM, MINIMUM, ADD with a scalar constant.

Each case writes a one-operator .tflite file with the flatbuffer object API
(the builder of test_tflite.py), compiles it with mcuforge's TFLite frontend
and runs the Plan's NumPy reference on inputs that hold every int8 value,
against the ``tflite_micro`` interpreter (TFLM's reference kernels): equal
byte for byte. Scales and zero points are random (seeded), shapes odd. The
C kernels equal the NumPy twins by tests/test_kernels.py; one generated
model with every new operator is built with gcc here and compared with TFLM
too.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from mcuforge.tools import hostrun
from mcuforge import reference
from mcuforge.config import BuildConfig
from mcuforge.pipeline import compile_model, plan_model

pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
from test_tflite import build_model, tflm_outputs  # noqa: E402
from marks import needs_qemu  # noqa: E402

SHAPES = [(1, 4, 8, 8), (1, 3, 7, 13), (1, 256), (1, 2, 5, 29)]


def rng_for(*key) -> np.random.Generator:
    return np.random.default_rng([zlib.crc32(k.encode()) if isinstance(k, str) else k for k in key])


def every_value(shape, rng) -> np.ndarray:
    """An int8 input of `shape` holding each of the 256 values at least once when it has room."""
    n = int(np.prod(shape))
    if n < 256:
        return (rng.choice(256, n, replace=False) - 128).astype(np.int8).reshape(shape)
    return rng.permutation(np.resize(np.arange(-128, 128), n)).astype(np.int8).reshape(shape)


def scale(rng, lo=-8.0, hi=-1.0) -> np.float32:
    return np.float32(np.exp2(rng.uniform(lo, hi)))


def run_case(tmp_path, tensors, ops, inputs, xs, name="op"):
    """Compile the model, run the reference on each input, compare with TFLM."""
    data = build_model(tensors, ops, inputs, [len(tensors) - 1])
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    plan = plan_model(path, BuildConfig(name=name))
    want = tflm_outputs(data, xs)
    for i, x in enumerate(xs):
        got = reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1)
        assert np.array_equal(got, want[i]), \
            f"{name} input {i}: {int(np.sum(got != want[i]))} values differ from TFLM"
    return plan, want


UNARY = ["HARD_SWISH", "LOGISTIC", "TANH", "LEAKY_RELU", "RELU", "RELU6", "QUANTIZE"]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("op", UNARY)
def test_unary_equals_tflm(op, seed, tmp_path):
    rng = rng_for("unary", op, seed)
    shape = SHAPES[seed % len(SHAPES)]
    s_in, z_in = scale(rng, -7, -2), int(rng.integers(-100, 100))
    out = dict(shape=shape, scale=scale(rng, -7, -2), zp=int(rng.integers(-100, 100)))
    opt_name, opts = None, {}
    if op == "LOGISTIC":
        out.update(scale=np.float32(1 / 256), zp=-128)
    elif op == "TANH":
        out.update(scale=np.float32(1 / 128), zp=0)
    elif op == "HARD_SWISH":  # TFLM needs output_scale >= input_scale / 128
        out["scale"] = np.float32(s_in * np.exp2(rng.uniform(-1.5, 1.5)))
    elif op == "RELU6" and seed % 2:  # TFLM clamps the raw values, whatever the output's parameters
        out.update(scale=s_in, zp=z_in)
    elif op == "LEAKY_RELU":
        opt_name, opts = "LeakyReluOptions", dict(alpha=float(rng.choice([0.01, 0.1, 0.2, 0.3, 1.5])))
    tensors = [dict(shape=shape, scale=s_in, zp=z_in, name="input"), out]
    xs = np.stack([every_value(shape, rng)[0] for _ in range(2)])
    plan, want = run_case(tmp_path, tensors, [(op, opt_name, opts, [0], [1])], [0], xs, op.lower())
    assert len(np.unique(want)) > 8  # not all saturated: the arithmetic is exercised
    assert [s.kernel for s in plan.steps] == ["requantize_s8" if op.startswith(("RELU", "QUANT")) else "lut_s8"]


BINARY = {"MUL": "MulOptions", "SUB": "SubOptions", "ADD": "AddOptions", "MAXIMUM": None, "MINIMUM": None}
# (shape of input 1, shape of input 2): same shapes, squeeze-and-excitation, other broadcasts
BROADCASTS = [((1, 5, 7, 9), (1, 5, 7, 9)), ((1, 6, 5, 24), (1, 1, 1, 24)), ((1, 1, 1, 16), (1, 3, 4, 16)),
              ((1, 4, 1, 3), (1, 1, 6, 1)), ((2, 33), (1, 33))]


def lowered(op: str, quants, shapes, attrs=None):
    """The Step mcuforge lowers a binary IR node to (ops.lower_binary / lower_add)."""
    from mcuforge.ir import Graph, Node, Quant, Tensor
    from mcuforge.ops import OPS

    names = ["a", "b", "out"]
    tensors = {n: Tensor(n, s, "int8", quant=Quant(float(q["scale"]), q["zp"])) for n, s, q in zip(names, shapes, quants)}
    node = Node(op.lower(), op.lower(), ["a", "b"], ["out"], dict(attrs or {}))
    g = Graph("g", tensors, [node], ["a", "b"], ["out"])
    return OPS[op.lower()].lower(node, g)


BINARY_CASES = [(op, case) for op in sorted(BINARY) for case, (a, b) in enumerate(BROADCASTS)
                if op != "ADD" or a == b]  # ADD of two activations takes equal shapes


@pytest.mark.parametrize("op,case", BINARY_CASES)
def test_binary_equals_tflm(op, case):
    """Two-input operators: TFLM on a two-input model against the kernel twin
    with the parameters mcuforge's lowering computes (every broadcast form)."""
    from test_kernels import tflm_run

    from mcuforge.kernels import KERNELS

    rng = rng_for("binary", op, case)
    a_shape, b_shape = BROADCASTS[case]
    out_shape = tuple(np.broadcast_shapes(a_shape, b_shape))
    same = op in ("MAXIMUM", "MINIMUM")  # TFLite gives them one quantization
    qa = dict(scale=scale(rng, -6, -2), zp=int(rng.integers(-60, 60)))
    qb = qa if same else dict(scale=scale(rng, -6, -2), zp=int(rng.integers(-60, 60)))
    qo = qa if same else dict(scale=np.float32(max(qa["scale"], qb["scale"]) * np.exp2(rng.uniform(-1, 2))),
                              zp=int(rng.integers(-60, 60)))
    if op == "MUL":
        qo["scale"] = np.float32(qa["scale"] * qb["scale"] * np.exp2(rng.uniform(4, 7)))
    act = {"NONE": (0, -np.inf, np.inf), "RELU": (1, 0.0, np.inf), "RELU6": (3, 0.0, 6.0)}[
        str(rng.choice(["NONE", "RELU", "RELU6"])) if BINARY[op] else "NONE"]
    tensors = [dict(shape=a_shape, **qa), dict(shape=b_shape, **qb), dict(shape=out_shape, **qo)]
    opts = {} if BINARY[op] is None else dict(fusedActivationFunction=act[0])
    # RELU6's clamp as TFLite rounds it (in float32), like the TFLite frontend
    step = lowered(op, [qa, qb, qo], [a_shape, b_shape, out_shape],
                   {"act_min": act[1], "act_max": act[2] if act[2] != 6.0 else
                    float(np.floor(np.float32(6.0) / qo["scale"] + np.float32(0.5))) * float(qo["scale"])})
    for k in range(3):
        a, b = every_value(a_shape, rng), every_value(b_shape, rng)
        want = tflm_run(op, BINARY[op], opts, tensors, [0, 1], [a, b])
        got = KERNELS[step.kernel](step.params, a, b)
        assert np.array_equal(got, want), f"{op} {a_shape} x {b_shape}: {int(np.sum(got != want))} differ"
    assert len(np.unique(want)) > 3


def _se_net(seed: int) -> bytes:
    """Every new operator in one one-input model: a MobileNetV3 block with
    squeeze-and-excitation (hard-swish, MEAN, 1x1 convs, RELU, ADD/RELU6/MUL
    with scalar constants as Keras' hard sigmoid, broadcast MUL), then SUB,
    MAXIMUM, MINIMUM, LOGISTIC, TANH, LEAKY_RELU, QUANTIZE."""
    from test_tflite import Net

    n = Net(seed, (1, 7, 9, 6), in_scale=0.04, in_zp=-5)
    x = n.conv(0, 16, (3, 3), stride=2)
    hs = n.act(n.shape(x), n.scale(x) * 0.7)
    n.ops.append(("HARD_SWISH", None, {}, [x], [hs]))
    x = n.conv(hs, 0, (3, 3), depthwise=True)
    m = n.mean(x, keep_dims=True)
    r = n.conv(m, 8, (1, 1), act=1)
    e = n.conv(r, 16, (1, 1))
    three = n.const(np.array([127], np.int8), scale=np.float32(3.0 / 127))
    sixth = n.const(np.array([127], np.int8), scale=np.float32(1 / 6 / 127))
    e3 = n.act(n.shape(e), 6 / 255, -128)  # Keras: relu6(x + 3) has the range [0, 6]
    n.ops.append(("ADD", "AddOptions", dict(fusedActivationFunction=3), [e, three], [e3]))
    hsig = n.act(n.shape(e), 1 / 255, -128)
    n.ops.append(("MUL", "MulOptions", {}, [e3, sixth], [hsig]))
    y = n.act(n.shape(x), n.scale(x) * 0.8)
    n.ops.append(("MUL", "MulOptions", {}, [x, hsig], [y]))
    q = n.act(n.shape(y), n.scale(y) * 1.3)
    n.ops.append(("QUANTIZE", None, {}, [y], [q]))
    d = n.act(n.shape(y), n.scale(y) * 1.1)
    n.ops.append(("SUB", "SubOptions", dict(fusedActivationFunction=0), [q, m], [d]))  # broadcast
    r6 = n.same_quant(d, n.shape(d))
    n.ops.append(("RELU6", None, {}, [d], [r6]))
    mx = n.same_quant(d, n.shape(d))
    n.ops.append(("MAXIMUM", None, {}, [d, r6], [mx]))
    mn = n.same_quant(mx, n.shape(mx))
    n.ops.append(("MINIMUM", None, {}, [mx, d], [mn]))
    lg = n.act(n.shape(mn), 1 / 256, -128)
    n.ops.append(("LOGISTIC", None, {}, [mn], [lg]))
    th = n.act(n.shape(lg), 1 / 128, 0)
    n.ops.append(("TANH", None, {}, [lg], [th]))
    lr = n.act(n.shape(th), 1 / 160, 7)
    n.ops.append(("LEAKY_RELU", "LeakyReluOptions", dict(alpha=0.2), [th], [lr]))
    return n.build(lr)


def test_every_new_operator_in_c_equals_tflm(tmp_path):
    data = _se_net(3)
    path = tmp_path / "se.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name="se"), tmp_path / "gen")
    kernels = {s.kernel for s in plan.steps}
    assert {"lut_s8", "mul_s8", "sub_s8", "maximum_s8", "minimum_s8", "requantize_s8"} <= kernels, kernels
    from mcuforge.tools.compare import random_inputs

    xs = random_inputs(plan, 8, seed=4)
    want = tflm_outputs(data, xs)
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    got = hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1)
    assert np.array_equal(got, want)
    for i, x in enumerate(xs):
        assert np.array_equal(reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1), want[i])
    assert len(np.unique(want)) > 8


@pytest.fixture(scope="module")
def mbv3_tflite(tmp_path_factory):
    """The zoo's Keras-style int8 MobileNetV3-small, compiled once: (bytes, plan, output dir, inputs, TFLM outputs)."""
    from mcuforge.tools.compare import random_inputs
    from mcuforge.zoo import mbv3_small_tflite

    tmp = tmp_path_factory.mktemp("mbv3")
    data = mbv3_small_tflite()
    path = tmp / "mbv3_small.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name="mbv3"), tmp / "gen")
    xs = random_inputs(plan, 10, seed=11)
    return data, plan, tmp / "gen", xs, tflm_outputs(data, xs)


def test_mobilenet_v3_small_tflite_equals_tflm(mbv3_tflite, tmp_path):
    """The generated C (host gcc) and the reference give TFLM's output bytes;
    compare finds every layer equal."""
    from mcuforge.tools.compare import compare_plan

    data, plan, out, xs, want = mbv3_tflite
    ops = {s.node.op for s in plan.steps}
    assert {"hard_swish", "mul", "add", "mean", "softmax"} <= ops, ops
    exe = hostrun.build(plan, out, tmp_path / "build")
    got = hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1)
    assert np.array_equal(got, want)
    for i, x in enumerate(xs[:3]):
        assert np.array_equal(reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1), want[i])
    assert len({w.tobytes() for w in want}) > 1  # the output depends on the input
    result = compare_plan(plan, data, xs[:2])
    assert result.identical, result.first_difference


@needs_qemu
def test_mobilenet_v3_small_tflite_cortex_m4_under_qemu(mbv3_tflite, tmp_path):
    """The same C cross-compiled for Cortex-M4 and run under QEMU gives TFLM's bytes."""
    from mcuforge.tools import qemu

    _, plan, out, xs, want = mbv3_tflite
    elf = qemu.build(plan, out, tmp_path, "qemu-cortex-m4")
    got = qemu.run(plan, elf, xs[:4], "qemu-cortex-m4")[0][0].reshape(4, -1)
    assert np.array_equal(got, want[:4])


# (input shape, begin, end, strides, begin_mask, end_mask, shrink_axis_mask)
SLICES = [((1, 7, 9, 5), [0, 1, 2, 0], [1, 6, 9, 5], [1, 2, 3, 1], 0, 0, 0),
          ((1, 7, 9, 5), [0, -1, 0, 4], [1, 0, -2, 0], [1, -2, 1, -1], 0b0001, 0b0100, 0),
          ((1, 6, 11), [0, 2, 1], [1, 100, -1], [1, 1, 2], 0, 0b010, 0),
          ((1, 5, 8, 3), [0, 2, 0, 1], [1, 3, 8, 3], [1, 1, 1, 1], 0, 0, 0b0010),
          ((1, 40), [0, -30], [1, -3], [1, 4], 0, 0, 0)]


@pytest.mark.parametrize("case", range(len(SLICES)))
def test_strided_slice_equals_tflm(case, tmp_path):
    from mcuforge.frontends.tflite import strided_slice_ranges

    shape, begin, end, strides, bm, em, sm = SLICES[case]
    rng = rng_for("slice", case)
    counts = [c for _, c in strided_slice_ranges(shape, begin, end, strides, bm, em, sm, False)]
    out_shape = tuple(c for d, c in enumerate(counts) if not sm & (1 << d))
    q = dict(scale=np.float32(0.03), zp=-7)
    consts = [dict(shape=(len(shape),), dtype="int32", data=np.array(v, np.int32)) for v in (begin, end, strides)]
    tensors = [dict(shape=shape, name="input", **q)] + consts + [dict(shape=out_shape, **q)]
    opts = dict(beginMask=bm, endMask=em, shrinkAxisMask=sm)
    xs = np.stack([every_value(shape, rng)[0] for _ in range(2)])
    run_case(tmp_path, tensors, [("STRIDED_SLICE", "StridedSliceOptions", opts, [0, 1, 2, 3], [4])], [0], xs,
             "slice")


# (input h, w, output h, w, align_corners, half_pixel_centers)
RESIZES = [(4, 5, 8, 10, False, False), (5, 3, 12, 7, False, True), (6, 6, 13, 4, True, False),
           (7, 9, 3, 4, False, True), (3, 4, 9, 9, True, False)]


@pytest.mark.parametrize("case", range(len(RESIZES)))
def test_resize_nearest_equals_tflm(case, tmp_path):
    h, w, oh, ow, align, half = RESIZES[case]
    rng = rng_for("resize", case)
    q = dict(scale=np.float32(0.05), zp=3)
    tensors = [dict(shape=(1, h, w, 6), name="input", **q),
               dict(shape=(2,), dtype="int32", data=np.array([oh, ow], np.int32)),
               dict(shape=(1, oh, ow, 6), **q)]
    xs = np.stack([every_value((1, h, w, 6), rng)[0] for _ in range(2)])
    run_case(tmp_path, tensors, [("RESIZE_NEAREST_NEIGHBOR", "ResizeNearestNeighborOptions",
                                  dict(alignCorners=align, halfPixelCenters=half), [0, 1], [2])], [0], xs, "resize")


# (input h, w, in_c, out_c, kernel, stride, SAME?, output h, w)
TRANSPOSE_CONVS = [(4, 5, 3, 6, 3, 2, True, 8, 10), (3, 3, 4, 5, 2, 2, False, 6, 6), (5, 4, 2, 3, 3, 1, True, 5, 4),
                   (3, 4, 5, 4, 4, 3, False, 10, 13), (2, 3, 3, 2, 5, 2, True, 4, 6)]


@pytest.mark.parametrize("case", range(len(TRANSPOSE_CONVS)))
def test_transpose_conv_equals_tflm(case, tmp_path):
    h, w, c, oc, k, s, same, oh, ow = TRANSPOSE_CONVS[case]
    rng = rng_for("tconv", case)
    s_in = scale(rng, -6, -3)
    s_w = np.float32(np.exp2(rng.uniform(-8, -6, oc))) if case % 2 else np.float32(np.exp2(rng.uniform(-8, -6)))
    wq = rng.integers(-127, 128, (oc, k, k, c)).astype(np.int8)
    bias = rng.integers(-2000, 2000, oc).astype(np.int32)
    s_out = np.float32(s_in * np.max(s_w) * 128 * np.sqrt(k * k * c / (s * s)) / 12)
    tensors = [dict(shape=(4,), dtype="int32", data=np.array([1, oh, ow, oc], np.int32)),
               dict(shape=wq.shape, data=wq, scale=s_w, zp=0, qdim=0),
               dict(shape=(1, h, w, c), name="input", scale=s_in, zp=int(rng.integers(-20, 20))),
               dict(shape=(oc,), dtype="int32", data=bias, scale=np.float32(s_in) * np.atleast_1d(s_w), zp=0),
               dict(shape=(1, oh, ow, oc), scale=s_out, zp=int(rng.integers(-20, 20)))]
    opts = dict(padding=0 if same else 1, strideW=s, strideH=s, fusedActivationFunction=int(case == 2))
    xs = np.stack([every_value((1, h, w, c), rng)[0] for _ in range(3)])
    _, want = run_case(tmp_path, tensors, [("TRANSPOSE_CONV", "TransposeConvOptions", opts, [0, 1, 2, 3], [4])],
                       [2], xs, "tconv")
    assert len(np.unique(want)) > 8


def test_parameters_tflm_refuses_are_one_clear_error(tmp_path):
    """HARD_SWISH whose output scale is below input_scale / 128 (TFLM's
    prepare fails) and an ADD of shapes that do not broadcast: exit 2 naming
    the operator, no traceback."""
    import subprocess
    import sys

    cases = {
        "hard_swish": ([dict(shape=(1, 8), scale=np.float32(0.5), zp=0, name="input"),
                        dict(shape=(1, 8), scale=np.float32(0.001), zp=0)],
                       [("HARD_SWISH", None, {}, [0], [1])], "HARD_SWISH_0"),
        "add": ([dict(shape=(1, 4, 4, 3), scale=np.float32(0.1), zp=0, name="input"),
                 dict(shape=(2,), scale=np.float32(0.1), zp=0, data=np.array([3, -4], np.int8)),
                 dict(shape=(1, 4, 4, 3), scale=np.float32(0.2), zp=0)],
                [("ADD", "AddOptions", {}, [0, 1], [2])], "operator 0 (ADD): shapes"),
    }
    for kind, (tensors, ops, expected) in cases.items():
        path = tmp_path / f"{kind}.tflite"
        out_index = 1 if kind == "hard_swish" else 2
        path.write_bytes(build_model(tensors, ops, [0], [out_index]))
        res = subprocess.run([sys.executable, "-m", "mcuforge", "compile", str(path), "-o", str(tmp_path / kind)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stderr
        assert expected in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_hand_written_hard_swish_matches_onnxruntime(tmp_path):
    """MobileNetV3 code written before nn.Hardswish: x * relu6(x + 3) / 6 and
    a squeeze-and-excitation gate relu6(s + 3) / 6 (ONNX Add, Clip, Div and
    Mul with constants). Quantized by onnxruntime (QDQ), compiled keeping its
    scales: every layer within 1 LSB of onnxruntime's int8 tensors."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    from test_onnxruntime_oracle import export, ort_int8_tensors, quantize_qdq, to_ir

    from mcuforge.kernels import KERNELS

    class Legacy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.Conv2d(8, 8, 3, stride=2)
            self.fc1, self.fc2 = torch.nn.Conv2d(8, 4, 1), torch.nn.Conv2d(4, 8, 1)
            self.c = torch.nn.Conv2d(8, 6, 1)

        def forward(self, x):
            x = self.a(x)
            x = x * torch.nn.functional.relu6(x + 3.0) / 6.0
            y = self.b(x)
            s = self.fc2(torch.relu(self.fc1(y.mean(dim=(2, 3), keepdim=True))))
            return self.c(y * (torch.nn.functional.relu6(s + 3.0) / 6.0))

    torch.manual_seed(0)
    module, example = Legacy().eval(), torch.randn(1, 3, 11, 13)
    src = export(module, example, tmp_path / "legacy.onnx")
    qdq = quantize_qdq(src, tmp_path / "legacy_qdq.onnx", tuple(example.shape), True)
    plan = plan_model(qdq, BuildConfig(name="legacy"))
    assert {"mul", "add"} & {s.node.op for s in plan.steps}
    x = np.random.default_rng(5).standard_normal(tuple(example.shape)).astype(np.float32)
    ort = {k: to_ir(v) for k, v in ort_int8_tensors(qdq, x).items()}
    compared = 0
    for step in plan.steps:
        ins = [ort.get(t) for t in step.inputs]
        if any(v is None for v in ins) or step.outputs[0] not in ort:
            continue
        got = KERNELS[step.kernel](step.params, *[v.reshape(-1) for v in ins])
        diff = np.abs(got.astype(np.int32) - ort[step.outputs[0]].reshape(-1).astype(np.int32))
        assert diff.max() <= 1, f"{step.name} ({step.node.op}): {int(diff.max())} LSB from onnxruntime"
        compared += 1
    assert compared >= len(plan.steps) // 2
