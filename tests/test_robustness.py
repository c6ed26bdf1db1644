"""Hostile model files: names that are not UTF-8, not C identifiers or that
close C comments compile into C that builds; layers whose int32 accumulator
could overflow are refused naming the layer (exit 2), while the same layer
one step inside the bound compiles and equals TFLM."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from mcuforge.tools import hostrun
from mcuforge import reference
from mcuforge.bounds import INT32_MAX, input_swing
from mcuforge.tools.compare import random_inputs
from mcuforge.plan import Plan
from test_cli import assert_clean_failure, small_onnx

schema = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
from test_tflite import build_model, tflm_outputs  # noqa: E402


def mcuforge(*args):
    return subprocess.run([sys.executable, "-m", "mcuforge", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


def build_and_check(out: Path, tmp: Path, n: int = 4) -> Plan:
    """The compiled directory builds with -Werror and equals the reference."""
    plan = Plan.load(out)
    exe = hostrun.build(plan, out, tmp / "build")
    xs = random_inputs(plan, n, seed=3)
    got = hostrun.run(plan, exe, xs)[0]
    for i, x in enumerate(xs):
        want = reference.run(plan, x).outputs[plan.outputs[0]]
        assert np.array_equal(got[i].reshape(-1), want.reshape(-1))
    return plan


# ------------------------------------------------------------------ names


def test_onnx_node_name_not_utf8_compiles(tmp_path):
    """Issue 11, failure 4: four bytes of a Conv's name overwritten with ff ff ff 7f made
    json.dumps(report) fail with an internal error (exit 1)."""
    data = small_onnx(tmp_path / "m.onnx").read_bytes()
    assert data.count(b"conv1") == 1
    bad = tmp_path / "bad_name.onnx"
    bad.write_bytes(data.replace(b"conv1", b"\xff\xff\xff\x7f1"))
    out = tmp_path / "out"
    res = mcuforge("compile", bad, "-o", out, "-q")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["layers"][0]["name"] == "\\xff\\xff\\xff\\x7f1"
    c = (out / "bad_name.c").read_text(encoding="ascii")  # the C is plain ASCII
    assert "\\xff\\xff\\xff\\x7f1: conv2d" in c
    build_and_check(out, tmp_path)


HOSTILE_NAMES = ["a */ int x; /*", "line\nbreak", "tri??/", "\u202eevil", "white space-and.dots", "1st",
                 "__builtin_trap", "x" * 300]


def _named_tflite(names: list[str], raw: bytes | None = None) -> bytes:
    """int8 FC -> FC with hostile tensor names (and one name given as raw bytes)."""
    rng = np.random.default_rng(0)
    tensors = [dict(shape=(1, 8), scale=0.05, zp=3, name=names[0]),
               dict(shape=(6, 8), data=rng.integers(-127, 128, (6, 8)), scale=0.01, name=names[1]),
               dict(shape=(6,), dtype="int32", data=rng.integers(-900, 900, 6), scale=0.0005, name=names[2]),
               dict(shape=(1, 6), scale=0.04, zp=-5, name=names[3]),
               dict(shape=(4, 6), data=rng.integers(-127, 128, (4, 6)), scale=0.01, name=names[4]),
               dict(shape=(1, 4), scale=0.08, zp=1, name=names[5])]
    data = build_model(tensors, [("FULLY_CONNECTED", "FullyConnectedOptions", {}, [0, 1, 2], [3]),
                                 ("FULLY_CONNECTED", "FullyConnectedOptions", {}, [3, 4, -1], [5])], [0], [5])
    if raw is not None:  # overwrite the marker name's bytes in place
        marker = names[3].encode()
        assert data.count(marker) == 1 and len(raw) == len(marker)
        data = data.replace(marker, raw)
    return data


@pytest.mark.parametrize("kind", ["tflite", "onnx"])
def test_hostile_names_compile_to_clean_c(kind, tmp_path):
    if kind == "tflite":
        path = tmp_path / "named.tflite"
        path.write_bytes(_named_tflite(HOSTILE_NAMES[:3] + ["MARK"] + HOSTILE_NAMES[3:5], raw=b"\xc3\x28\xff\x00"))
    else:
        data = small_onnx(tmp_path / "m.onnx").read_bytes()
        for old, new in (("conv1", HOSTILE_NAMES[0]), ("relu1", HOSTILE_NAMES[1]), ("gap", HOSTILE_NAMES[2]),
                         ("fc", HOSTILE_NAMES[3])):
            model = onnx.load_model_from_string(data)
            for n in model.graph.node:
                if n.name == old:
                    n.name = new
            data = model.SerializeToString()
        path = tmp_path / "named.onnx"
        path.write_bytes(data)
    out = tmp_path / "out"
    res = mcuforge("compile", path, "-o", out, "-q")
    assert res.returncode == 0, res.stderr
    report = json.loads((out / "report.json").read_text())
    for f in out.glob("*.[ch]"):
        text = f.read_text(encoding="ascii")
        assert "int x;" not in text.replace("* / int x;", "")  # a name never closes the comment
        assert "??" not in text  # nor forms a trigraph
    names = [layer["name"] for layer in report["layers"]]
    assert all("\n" not in n and "\u202e" not in n for n in names), names
    build_and_check(out, tmp_path)


# --------------------------------------------------------- accumulator bounds


def _fc_tflite(bias_value: int, k: int = 16, channel: int = 2, in_zp: int = 3) -> bytes:
    """One int8 FC layer whose output channel `channel` has weights 127 and the given bias."""
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (4, k)).astype(np.int8)
    w[channel] = 127
    bias = rng.integers(-1000, 1000, 4).astype(np.int64)
    bias[channel] = bias_value
    tensors = [dict(shape=(1, k), scale=0.02, zp=in_zp, name="x"),
               dict(shape=(4, k), data=w, scale=0.004, name="w"),
               dict(shape=(4,), dtype="int32", data=bias.astype(np.int32), scale=0.02 * 0.004, name="b"),
               dict(shape=(1, 4), scale=1400.0, zp=0, name="y")]
    return build_model(tensors, [("FULLY_CONNECTED", "FullyConnectedOptions", {}, [0, 1, 2], [3])], [0], [3])


def test_adversarial_fully_connected_is_refused(tmp_path):
    k, zp = 16, 3
    edge = INT32_MAX - 127 * k * input_swing(-zp)  # the largest bias whose accumulator cannot overflow
    path = tmp_path / "fc_over.tflite"
    path.write_bytes(_fc_tflite(edge + 1, k, in_zp=zp))
    out = tmp_path / "out"
    res = mcuforge("compile", path, "-o", out)
    assert_clean_failure(res, 2, out, "FULLY_CONNECTED_0", "int32 accumulator", "output channel 2",
                         f"{INT32_MAX + 1:,}")

    # one step inside the bound: compiles, and the C equals TFLM on the worst-case inputs too
    data = _fc_tflite(edge, k, in_zp=zp)
    ok = tmp_path / "fc_edge.tflite"
    ok.write_bytes(data)
    res = mcuforge("compile", ok, "-o", out, "-q")
    assert res.returncode == 0, res.stderr
    plan = Plan.load(out)
    exe = hostrun.build(plan, out, tmp_path / "build")
    xs = np.concatenate([np.full((1, k), 127, np.int8), np.full((1, k), -128, np.int8),
                         random_inputs(plan, 3, seed=2)])
    assert np.array_equal(hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1), tflm_outputs(data, xs))


def test_adversarial_float_gemm_is_refused(tmp_path):
    """A float model whose bias, on the tiny scale of its weights, saturates int32."""
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((4, 64)) * 1e-7).astype(np.float32)
    w[1] = 1e-3  # channel 1: large weights, so the sum |w| x 255 is large on its own scale
    b = np.array([0.0, 1e6, 0.0, 0.0], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="adversarial_fc", transB=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    path = tmp_path / "gemm.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    out = tmp_path / "out"
    assert_clean_failure(mcuforge("compile", path, "-o", out), 2, out, "adversarial_fc", "output channel 1")


def test_doctests_of_the_helpers():
    import doctest

    from mcuforge import untrusted
    from mcuforge.codegen import cwriter

    for module in (untrusted, cwriter):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


# ------------------------------------------------------- external weight files


def _external(tmp_path: Path, length: int | None, sparse_size: int | None) -> Path:
    """small_onnx with weight 'w' in an external file (optionally claiming `length` bytes,
    or stored in a sparse file of `sparse_size` bytes)."""
    model = onnx.load(small_onnx(tmp_path / "base.onnx"))
    w = next(t for t in model.graph.initializer if t.name == "w")
    raw = numpy_helper.to_array(w).tobytes()
    w.ClearField("float_data")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entries = {"location": "w.bin"} | ({"length": str(length)} if length is not None else {})
    for k, v in entries.items():
        e = w.external_data.add()
        e.key, e.value = k, v
    with open(tmp_path / "w.bin", "wb") as f:
        f.write(raw)
        if sparse_size:
            f.truncate(sparse_size)  # a hole: no disk space, but reading it would take sparse_size bytes
    path = tmp_path / "ext.onnx"
    onnx.save(model, path)
    return path


def _limited(*args, memory_mb: int = 3072):
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, resource.getrlimit(resource.RLIMIT_AS)[1]))

    return subprocess.run([sys.executable, "-m", "mcuforge", *map(str, args)], capture_output=True, text=True,
                          timeout=300, preexec_fn=limit)


@pytest.mark.parametrize("length,sparse", [(None, 10**10), (10**12, None)], ids=["sparse-10GB-file", "length-1e12"])
def test_huge_external_weights_refused_before_reading(length, sparse, tmp_path):
    path = _external(tmp_path, length, sparse)
    out = tmp_path / "out"
    assert_clean_failure(_limited("compile", path, "-o", out), 2, out, "external weight 'w' would read")


def test_external_weights_compile(tmp_path):
    path = _external(tmp_path, None, None)
    res = _limited("compile", path, "-o", tmp_path / "out", "-q")
    assert res.returncode == 0, res.stderr


# ------------------------------------------------------------ bounded host work


def test_float_convolution_in_row_blocks(monkeypatch):
    """Calibration's float convolutions run in row blocks (bounded memory) with the same results."""
    torch = pytest.importorskip("torch")  # noqa: F841
    from mcuforge import float_exec
    from mcuforge.frontends.torch import from_torch
    from mcuforge.pipeline import canonicalize
    from mcuforge.zoo import ZOO

    module, example = ZOO["odd_shapes"]()
    g = canonicalize(from_torch(module, example, name="odd_shapes"))
    x = np.random.default_rng(0).standard_normal(g.tensors[g.inputs[0]].shape).astype(np.float32)
    whole = float_exec.run_float(g, x)
    monkeypatch.setattr(float_exec, "_BLOCK_ELEMENTS", 64)  # every conv in many blocks
    blocked = float_exec.run_float(g, x)
    for name, value in whole.items():
        np.testing.assert_allclose(blocked[name], value, rtol=1e-6, atol=1e-6 * float(np.abs(value).max() + 1))
