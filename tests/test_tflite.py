"""TFLite frontend: the MLPerf Tiny models against TFLM's reference kernels.

For each of the four int8 reference models of MLPerf Tiny (read from
../shared/models, never copied into the repository): the generated C, built
once with the host gcc, gives exactly the bytes of the ``tflite-micro``
interpreter (TFLM's reference kernels) on 20 seeded random inputs, and so
do the NumPy reference and the same C cross-compiled for Cortex-M4 and run
under QEMU; ``mcuforge compare`` finds no difference, and names
the layer whose multiplier a test changed. Small models built here with the
flatbuffer object API cover the operators and options the four do not use,
and bad files (float, uint8, custom op, unsupported ops, truncated, garbage)
each get one clear error.
"""
from __future__ import annotations

import copy
import hashlib
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcuforge.tools import hostrun
from mcuforge import reference
from mcuforge.tools.cli import main as cli_main
from mcuforge.tools.compare import compare_plan, random_inputs
from mcuforge.config import BuildConfig
from mcuforge.frontends.tflite import load as load_tflite, load_bytes
from mcuforge.ir import McuforgeError
from mcuforge.pipeline import compile_model, plan_model
from marks import needs_qemu

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models"
MODELS = {
    "vww": "vww_96_int8.tflite",
    "ic": "pretrainedResnet_quant.tflite",
    "kws": "kws_ref_model.tflite",
    "ad": "ad01_int8.tflite",
}
# Layer-by-layer arena targets (bytes): the largest single op's inputs + output
# for VWW, IC and KWS; below TFLM's 3,984 for AD (../shared/models/README.md).
ARENA_TARGET = {"vww": 55_296, "ic": 49_152, "kws": 16_000, "ad": 3_983}
N_INPUTS = 20

schema = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
runtime = pytest.importorskip("tflite_micro.python.tflite_micro.runtime")
flatbuffers = pytest.importorskip("flatbuffers")

needs_models = pytest.mark.skipif(
    not all((MODELS_DIR / f).is_file() for f in MODELS.values()),
    reason=f"the MLPerf Tiny reference models are not in {MODELS_DIR} (see ../shared/models/README.md)")


def tflm_outputs(model: bytes | Path, xs: np.ndarray) -> np.ndarray:
    """TFLM reference kernels' output bytes for each input."""
    data = model.read_bytes() if isinstance(model, Path) else model
    interpreter = runtime.Interpreter.from_bytes(data, arena_size=1 << 21)
    outs = []
    for x in xs:
        interpreter.set_input(np.ascontiguousarray(x[None]), 0)
        interpreter.invoke()
        outs.append(np.asarray(interpreter.get_output(0)).reshape(-1).copy())
    return np.stack(outs)


# --------------------------------------------------------------- the four models


@pytest.fixture(scope="module", params=sorted(MODELS))
def mlperf(request, tmp_path_factory):
    """(key, plan, output dir, host executable, inputs, TFLM outputs), built once per model."""
    if not (MODELS_DIR / MODELS[request.param]).is_file():
        pytest.skip(f"the MLPerf Tiny reference models are not in {MODELS_DIR} (see ../shared/models/README.md)")
    key = request.param
    path = MODELS_DIR / MODELS[key]
    out = tmp_path_factory.mktemp(key) / "gen"
    plan = compile_model(path, BuildConfig(name=key), out)
    exe = hostrun.build(plan, out, out.parent / "build")
    xs = random_inputs(plan, N_INPUTS, seed=sum(map(ord, key)))
    return key, plan, out, exe, xs, tflm_outputs(path, xs)


@needs_models
def test_c_equals_tflm(mlperf):
    key, plan, _, exe, xs, want = mlperf
    got = hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1)
    for i in range(len(xs)):
        assert np.array_equal(got[i], want[i]), \
            f"{key} input {i}: C {got[i].tolist()} != TFLM {want[i].tolist()}"


@needs_models
@needs_qemu
def test_cortex_m4_under_qemu_equals_tflm(mlperf, tmp_path):
    """The same C cross-compiled for Cortex-M4 (arm-none-eabi-gcc) and run under QEMU."""
    from mcuforge.tools import qemu

    key, plan, out, _, xs, want = mlperf
    elf = qemu.build(plan, out, tmp_path, "qemu-cortex-m4")
    got = qemu.run(plan, elf, xs, "qemu-cortex-m4")[0][0].reshape(len(xs), -1)
    for i in range(len(xs)):
        assert np.array_equal(got[i], want[i]), f"{key} input {i}: Cortex-M4 output differs from TFLM"


@needs_models
def test_reference_equals_tflm(mlperf):
    key, plan, _, _, xs, want = mlperf
    for i, x in enumerate(xs):
        got = reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1)
        assert np.array_equal(got, want[i]), f"{key} input {i}: reference differs from TFLM"


@needs_models
def test_arena_within_target(mlperf):
    key, plan, out, *_ = mlperf
    assert plan.arena_size <= ARENA_TARGET[key], f"{key}: arena {plan.arena_size} > {ARENA_TARGET[key]}"
    assert f"#define {key.upper()}_ARENA_SIZE {plan.arena_size}\n" in (out / f"{key}.h").read_text()


@needs_models
def test_compare_finds_no_difference(mlperf):
    key, plan, _, _, xs, _ = mlperf
    result = compare_plan(plan, (MODELS_DIR / MODELS[key]).read_bytes(), xs[:2], "tflm")
    assert result.identical, f"{key}: first difference at {result.first_difference}"
    compared = [layer for layer in result.layers if layer.compared]
    assert len(compared) == len(plan.steps)  # every layer has an oracle value


@needs_models
def test_compare_names_a_perturbed_layer(mlperf):
    key, plan, _, _, xs, _ = mlperf
    bad = copy.deepcopy(plan)
    k = len(bad.steps) // 2
    while "multiplier" not in bad.steps[k].params:  # a layer that requantizes
        k += 1
    step = bad.steps[k]
    # this layer's requantization multipliers -25% (one channel alone may be
    # dead: VWW has channels with weight scales ~1e-9)
    mult = np.array(step.params["multiplier"], dtype=np.int64)
    step.params["multiplier"] = (mult * 3 // 4).astype(np.int32) if mult.ndim else int(mult) * 3 // 4
    result = compare_plan(bad, (MODELS_DIR / MODELS[key]).read_bytes(), xs[:2], "tflm")
    first = result.first_difference
    assert first is not None and first.index == k and first.name == step.name, (k, first)
    assert all(not layer.differs for layer in result.layers[:k])


@needs_models
def test_frontend_keeps_the_file_exactly():
    """Scales and zero points as in the file; SAME/VALID padding as TFLite."""
    from mcuforge.frontends.tflite import read_model, tensor_names

    for key, fname in MODELS.items():
        data = (MODELS_DIR / fname).read_bytes()
        g = load_tflite(MODELS_DIR / fname)
        assert (g.source_format, g.source_layout) == ("tflite", "NHWC")
        assert g.source_hash == hashlib.sha256(data).hexdigest()
        model = read_model(data)
        for t, name in zip(model.tensors, tensor_names(model.tensors)):
            if name not in g.tensors:
                continue
            ir = g.tensors[name]
            if t.data is not None:  # weights and biases: the file's integers
                assert np.array_equal(ir.data.reshape(-1), t.data.reshape(-1)), name
            if ir.dtype == "int32" or t.scale is None:
                continue  # biases: the quantizer gives them input scale x weight scale
            assert np.array_equal(ir.quant.scale, t.scale), name
            assert ir.quant.scale.dtype == np.float64
            assert np.array_equal(ir.quant.scale.astype(np.float32).astype(np.float64), ir.quant.scale)
            assert np.array_equal(ir.quant.zero_point, np.broadcast_to(t.zero_point, t.scale.shape)), name
    kws = {n.name: n for n in load_tflite(MODELS_DIR / MODELS["kws"]).nodes}
    # 49x10 input, 10x4 kernel, stride 2, SAME: out 25x5, pads 4/5 rows, 1/1 columns
    assert kws["CONV_2D_0"].attrs["pads"] == (4, 1, 5, 1)
    vww = {n.name: n for n in load_tflite(MODELS_DIR / MODELS["vww"]).nodes}
    # 96x96, 3x3, stride 2, SAME: 0 before and 1 after
    assert vww["CONV_2D_0"].attrs["pads"] == (0, 0, 1, 1)
    assert vww["DEPTHWISE_CONV_2D_3"].attrs["pads"] == (0, 0, 1, 1)


@needs_models
def test_compare_cli_on_a_directory(tmp_path, capsys):
    """compare on a compile output directory; a changed multiplier -> exit 4 naming that layer."""
    path = MODELS_DIR / MODELS["kws"]
    out = tmp_path / "kws"
    assert cli_main(["-q", "compile", str(path), "-o", str(out), "--name", "kws"]) == 0
    assert cli_main(["compare", str(out)]) == 0
    text = capsys.readouterr().out
    assert "no difference" in text and "CONV_2D_0" in text
    from mcuforge.plan import Plan

    plan = Plan.load(out)
    step = next(s for s in plan.steps if s.name == "CONV_2D_4")
    step.params["multiplier"] = np.asarray(step.params["multiplier"]) // 2
    plan.save(out)
    assert cli_main(["compare", str(out)]) == 4
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(f"first differing layer: {step.index} CONV_2D_4 (conv2d)"), last


@needs_models
def test_compare_litert_shows_the_fully_connected_rounding(capsys):
    """LiteRT rounds the fully-connected requantization once, TFLM twice: on
    AD the first difference is a fully-connected layer, off by 1."""
    pytest.importorskip("ai_edge_litert")
    x = np.random.default_rng(3).integers(-128, 128, (4, 640)).astype(np.int8)
    path = MODELS_DIR / MODELS["ad"]
    plan = plan_model(path, BuildConfig())
    result = compare_plan(plan, path.read_bytes(), x, "litert")
    first = result.first_difference
    assert first is not None and first.op == "fully_connected" and first.max_abs_diff == 1
    assert compare_plan(plan, path.read_bytes(), x, "tflm").identical


# ---------------------------------------------------- models built here (object API)


from mcuforge.tflite_writer import Net, build_model  # noqa: E402


def _conv_net() -> bytes:
    """Every conv-like option the MLPerf models do not use."""
    n = Net(1, (1, 11, 12, 3))
    x = n.pad(0, [(0, 0), (1, 2), (0, 1), (0, 0)])  # folded into the next conv
    x = n.conv(x, 8, (3, 3), stride=2, act=3)  # SAME stride 2, RELU6
    x = n.conv(x, 0, (3, 3), depthwise=True, mult=2, same=False, act=1)  # depth multiplier 2, VALID
    y = n.conv(x, 16, (1, 2), bias=False, per_channel=False, act=2)  # no bias, per-tensor, RELU_N1_TO_1
    z = n.conv(x, 16, (3, 3), dilation=2, like=y)  # dilated; TFLM concatenates equal quantizations only
    a = n.pool(y, "MAX_POOL_2D", (2, 2), 2)
    b = n.pool(z, "AVERAGE_POOL_2D", (3, 2), 2, act=1)
    x = n.concat([a, b], 3)
    x = n.add(x, n.conv(x, 32, (1, 1)), act=1)
    x = n.mean(x, keep_dims=False)
    x = n.fc(x, 10, bias=False)
    return n.build(n.softmax(x, beta=0.7))


def _fc_net() -> bytes:
    """Fully connected with keep_num_dims on a 3-D input, without bias, reshape, mean keeping dims."""
    n = Net(2, (1, 4, 8), in_zp=-7)
    x = n.fc(0, 6, act=1, keep_num_dims=True)  # (1, 4, 6)
    x = n.reshape(x, (1, 24))
    x = n.fc(x, 5, bias=False)
    return n.build(x)


def _misc_net() -> bytes:
    """PADV2 with a constant other than the zero point, EXPAND_DIMS, SQUEEZE, per-channel FC."""
    n = Net(7, (1, 6, 5, 4))
    t = n.tensors[0]
    pads = n.const(np.array([[0, 0], [1, 1], [0, 1], [0, 0]], np.int32), "int32")
    value = n.const(np.array([11], np.int8), scale=t["scale"], zp=t["zp"])  # TFLM: the input's quantization
    x = n.op("PADV2", None, {}, [0, pads, value], (1, 8, 6, 4))
    x = n.conv(x, 6, (3, 3))
    e = n.op("EXPAND_DIMS", None, {}, [x, n.const(np.array([0], np.int32), "int32")], (1, 1) + n.shape(x)[1:])
    x = n.op("SQUEEZE", "SqueezeOptions", dict(squeezeDims=[0]), [e], n.shape(x))
    x = n.reshape(x, (1, int(np.prod(n.shape(x)))))
    return n.build(n.fc(x, 7, per_channel=True))


def _mean_net() -> bytes:
    n = Net(3, (1, 5, 7, 6))
    x = n.mean(n.conv(0, 6, (1, 1)), keep_dims=True)
    return n.build(n.pool(x, "MAX_POOL_2D", (1, 1), 1))


@pytest.mark.parametrize("make", [_conv_net, _fc_net, _mean_net, _misc_net], ids=["conv", "fc", "mean", "misc"])
def test_built_models_equal_tflm(make, tmp_path):
    data = make()
    path = tmp_path / "m.tflite"
    path.write_bytes(data)
    plan = plan_model(path, BuildConfig())
    xs = random_inputs(plan, 12, seed=5)
    want = tflm_outputs(data, xs)
    for i, x in enumerate(xs):
        got = reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1)
        assert np.array_equal(got, want[i]), f"input {i}: {got.tolist()} != TFLM {want[i].tolist()}"
    # outputs are not all saturated: the test exercises the arithmetic
    assert len(np.unique(want)) > 3
    result = compare_plan(plan, data, xs[:2])
    assert result.identical, result.first_difference


def test_built_model_c_equals_tflm(tmp_path):
    data = _conv_net()
    path = tmp_path / "conv_net.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(), tmp_path / "gen")
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    xs = random_inputs(plan, 10, seed=9)
    got = hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1)
    assert np.array_equal(got, tflm_outputs(data, xs))


def test_pad_folds_and_padding_attributes():
    g = load_bytes(_conv_net(), source="conv_net.tflite")
    nodes = {n.name: n for n in g.nodes}
    # input 11x12 padded to 14x13; 3x3 stride 2 SAME: out 7x7, total pad 1 row (0 before, 1 after),
    # 2 columns (1/1)
    assert nodes["CONV_2D_1"].attrs["pads"] == (0, 1, 1, 1)
    assert nodes["DEPTHWISE_CONV_2D_2"].attrs["depth_multiplier"] == 2
    assert nodes["DEPTHWISE_CONV_2D_2"].attrs["pads"] == (0, 0, 0, 0)
    # RELU6 clamps at TFLite's integer: zp + round(6 / scale) in float32
    scale = float(g.tensors[nodes["CONV_2D_1"].outputs[0]].quant.scale[0])
    q6 = float(np.float32(6.0) / np.float32(scale))
    assert nodes["CONV_2D_1"].attrs["act_max"] / scale == pytest.approx(math.floor(q6 + 0.5), abs=1e-6)


# ------------------------------------------------------------------ bad files


def _dynamic_range_model() -> bytes:
    """float activations, int8 weights: dynamic-range quantization (float models compile, this does not)."""
    w = np.ones((4, 8), np.int8)
    return build_model([dict(shape=(1, 8), dtype="float32"), dict(shape=(4, 8), data=w, scale=0.1),
                        dict(shape=(1, 4), dtype="float32")],
                       [("FULLY_CONNECTED", "FullyConnectedOptions", {}, [0, 1, -1], [2])], [0], [2])


def _float_weights_model() -> bytes:
    """int8 in and out, but a float weight inside (a broken conversion)."""
    w = np.ones((4, 8), np.float32)
    return build_model([dict(shape=(1, 8), scale=0.1, zp=0), dict(shape=(4, 8), dtype="float32", data=w),
                        dict(shape=(1, 4), scale=0.1, zp=0)],
                       [("FULLY_CONNECTED", "FullyConnectedOptions", {}, [0, 1, -1], [2])], [0], [2])


def _uint8_model() -> bytes:
    w = np.full((4, 8), 130, np.uint8)
    return build_model([dict(shape=(1, 8), dtype="uint8", scale=0.1, zp=128),
                        dict(shape=(4, 8), dtype="uint8", data=w, scale=0.01, zp=128),
                        dict(shape=(1, 4), dtype="uint8", scale=0.1, zp=128)],
                       [("FULLY_CONNECTED", "FullyConnectedOptions", {}, [0, 1, -1], [2])], [0], [2])


def _custom_op_model() -> bytes:
    return build_model([dict(shape=(1, 8), scale=0.1, zp=0), dict(shape=(1, 8), scale=0.1, zp=0),
                        dict(shape=(1, 8), scale=1 / 256, zp=-128)],
                       [(("CUSTOM", "MyFancyOp"), None, {}, [0], [1]),
                        ("SOFTMAX", "SoftmaxOptions", dict(beta=1.0), [1], [2])], [0], [2])


def _unsupported_ops_model() -> bytes:
    """Two unsupported builtins and an unsupported fused activation: all named at once."""
    return build_model([dict(shape=(1, 8), scale=0.1, zp=0), dict(shape=(1, 8), scale=1 / 128, zp=0),
                        dict(shape=(1, 8), scale=1 / 256, zp=-128), dict(shape=(1, 8), scale=0.1, zp=0),
                        dict(shape=(1, 8), scale=0.1, zp=0)],
                       [("EXP", None, {}, [0], [1]), ("LOG", None, {}, [1], [2]),
                        ("ADD", "AddOptions", dict(fusedActivationFunction=4), [2, 2], [3]),
                        ("SQRT", None, {}, [3], [4])], [0], [4])


def _small_int8_model() -> bytes:
    n = Net(4, (1, 16))
    return n.build(n.fc(0, 32))


BAD_FILES = {
    "dynamic_range": (_dynamic_range_model, "dynamic-range"),
    "float_weights": (_float_weights_model, "float weights"),
    "uint8": (_uint8_model, "uint8"),
    "custom": (_custom_op_model, "operator 0: custom operator 'MyFancyOp'"),
    "unsupported": (_unsupported_ops_model, "operator 0: EXP, operator 1: LOG"),
    "truncated": (lambda: _small_int8_model()[:300], "not a valid TFLite model"),
    "truncated_tail": (lambda: _small_int8_model()[:-40], "not a valid TFLite model"),
    "garbage": (lambda: np.random.default_rng(0).integers(0, 256, 3000).astype(np.uint8).tobytes(),
                "not a valid TFLite model"),
    "garbage_with_identifier": (lambda: b"\x10\x00\x00\x00TFL3" + bytes(range(256)) * 4, "not a valid TFLite model"),
    "empty": (lambda: b"", "not a valid TFLite model"),
}


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_one_clear_error(kind, tmp_path):
    make, expected = BAD_FILES[kind]
    path = tmp_path / f"{kind}.tflite"
    path.write_bytes(make())
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "mcuforge", "compile", str(path), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("mcuforge: error:")]
    assert len(errors) == 1, res.stderr
    assert "Traceback" not in res.stderr
    assert str(path) in errors[0] and expected in errors[0], errors[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".out.*"))  # no half-written temporary directory either


def test_unsupported_lists_every_problem():
    with pytest.raises(McuforgeError) as err:
        load_bytes(_unsupported_ops_model(), source="u.tflite")
    text = str(err.value)
    for part in ("operator 0: EXP", "operator 1: LOG", "operator 3: SQRT",
                 "operator 2 (ADD): fused activation TANH"):
        assert part in text, text
    assert text.startswith("u.tflite: 4 problem(s)")


def test_truncation_anywhere_is_a_clear_error():
    """Every prefix of a valid file is rejected with a McuforgeError (never a crash)."""
    data = _small_int8_model()
    for cut in range(0, len(data), max(1, len(data) // 97)):
        with pytest.raises(McuforgeError, match="not a valid TFLite model"):
            load_bytes(data[:cut], source="cut.tflite")


def test_frontend_is_registered():
    from mcuforge import registry

    fe = registry.frontend_for(Path("model.tflite"))
    assert fe.name == "tflite" and fe.sniff(_small_int8_model()[:8])
