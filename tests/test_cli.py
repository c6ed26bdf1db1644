"""The command line: real subprocesses, exit codes of DESIGN.md, one clear
line per bad input, no traceback, nothing left behind."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def mcuforge(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mcuforge", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd)


def small_onnx(path: Path, dynamic: bool = False, extra_nodes=()) -> Path:
    """Conv(3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm, NCHW 1x3x12x12."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    fw = numpy_helper.from_array(rng.standard_normal((5, 8)).astype(np.float32), "fw")
    fb = numpy_helper.from_array(rng.standard_normal(5).astype(np.float32), "fb")
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu1"),
        helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fw", "fb"], ["y0"], name="fc", transB=1),
    ]
    out = "y0"
    for k, op in enumerate(extra_nodes):
        nodes.append(helper.make_node(op, [out], [f"e{k}"], name=f"weird_{op.lower()}_{k}"))
        out = f"e{k}"
    shape = ["N", 3, 12, 12] if dynamic else [1, 3, 12, 12]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, [1, 5])], [w, b, fw, fb])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path


@pytest.fixture
def model(tmp_path):
    return small_onnx(tmp_path / "small.onnx")


@pytest.fixture
def calib(tmp_path):
    p = tmp_path / "calib.npy"
    np.save(p, np.random.default_rng(1).standard_normal((8, 3, 12, 12)).astype(np.float32))
    return p


def assert_clean_failure(res, code, out_dir: Path, *needles):
    assert res.returncode == code, (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    errors = [l for l in res.stderr.splitlines() if l.startswith("mcuforge: error:")]
    assert len(errors) == 1, res.stderr
    for n in needles:
        assert n in errors[0], errors[0]
    assert not out_dir.exists(), "a failed compile left its output directory behind"
    leftovers = [p for p in out_dir.parent.iterdir() if p.name.startswith(f".{out_dir.name}.")]
    assert not leftovers


def test_compile_run_check_report(model, calib, tmp_path):
    out = tmp_path / "gen"
    res = mcuforge("compile", model, "-o", out, "--calibration", calib, "--name", "small")
    assert res.returncode == 0, res.stderr
    for f in ("small.c", "small.h", "small_weights.c", "report.json"):
        assert (out / f).is_file()
    report = json.loads((out / "report.json").read_text())
    assert report["arena_bytes"] > 0 and len(report["layers"]) >= 3
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(5).standard_normal((3, 3, 12, 12)).astype(np.float32))
    y = tmp_path / "y.npy"
    res = mcuforge("run", out, "--input", x, "--output", y, "--check")
    assert res.returncode == 0, res.stderr
    assert "check passed" in res.stdout
    assert np.load(y).shape == (3, 5) and np.load(y).dtype == np.int8
    png = tmp_path / "mem.png"
    res = mcuforge("report", out, "--plot", png)
    assert res.returncode == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "arena peak" in res.stdout
    res = mcuforge("report", out, "--json")
    assert json.loads(res.stdout)["arena_bytes"] == report["arena_bytes"]


def test_missing_calibration_is_loud_but_allowed(model, tmp_path):
    res = mcuforge("compile", model, "-o", tmp_path / "gen")
    assert res.returncode == 0, res.stderr
    assert "WARNING" in res.stderr and "calibration" in res.stderr


def test_garbage_onnx(tmp_path):
    bad = tmp_path / "garbage.onnx"
    bad.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    out = tmp_path / "gen"
    assert_clean_failure(mcuforge("compile", bad, "-o", out), 2, out, "garbage.onnx")


def test_truncated_onnx(model, tmp_path):
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    out = tmp_path / "gen"
    assert_clean_failure(mcuforge("compile", cut, "-o", out), 2, out, "cut.onnx")


def test_unsupported_ops_listed_together(tmp_path):
    m = small_onnx(tmp_path / "weird.onnx", extra_nodes=("Sin", "Cos"))
    out = tmp_path / "gen"
    assert_clean_failure(mcuforge("compile", m, "-o", out), 2, out, "weird_sin_0", "weird_cos_1")


def test_dynamic_input_shape(tmp_path):
    m = small_onnx(tmp_path / "dyn.onnx", dynamic=True)
    out = tmp_path / "gen"
    assert_clean_failure(mcuforge("compile", m, "-o", out), 2, out, "x")


def test_missing_calibration_file(model, tmp_path):
    out = tmp_path / "gen"
    assert_clean_failure(mcuforge("compile", model, "-o", out, "--calibration", tmp_path / "nope.npy"), 2, out,
                         "nope.npy")


def test_calibration_wrong_shape(model, tmp_path):
    bad = tmp_path / "bad_calib.npy"
    np.save(bad, np.zeros((4, 3, 10, 10), np.float32))
    out = tmp_path / "gen"
    assert_clean_failure(mcuforge("compile", model, "-o", out, "--calibration", bad), 2, out, "bad_calib.npy",
                         "(4, 3, 10, 10)")


def test_budget_too_small(model, calib, tmp_path):
    out = tmp_path / "gen"
    res = mcuforge("compile", model, "-o", out, "--calibration", calib, "--sram-budget", "100")
    assert_clean_failure(res, 3, out, "needs", "100", "--sram-budget")


def test_bad_flag_value(model, tmp_path):
    out = tmp_path / "gen"
    res = mcuforge("compile", model, "-o", out, "--sram-budget", "lots")
    assert_clean_failure(res, 2, out, "--sram-budget")


def test_missing_model(tmp_path):
    out = tmp_path / "gen"
    assert_clean_failure(mcuforge("compile", tmp_path / "absent.onnx", "-o", out), 2, out, "absent.onnx")


def test_run_check_detects_a_difference(model, calib, tmp_path):
    """--check must fail when the C differs: corrupt one weight of the C."""
    out = tmp_path / "gen"
    assert mcuforge("compile", model, "-o", out, "--calibration", calib, "--name", "small").returncode == 0
    w = out / "small_weights.c"
    text = w.read_text()
    start = text.index("_filter[")
    brace = text.index("{", start) + 1
    end = text.index(",", brace)
    value = int(text[brace:end].strip())
    w.write_text(text[:brace] + f"\n    {value // 2 + 1 if value <= 0 else -value}" + text[end:])
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(5).standard_normal((4, 3, 12, 12)).astype(np.float32))
    res = mcuforge("run", out, "--input", x, "--check")
    assert res.returncode != 0
    assert "MISMATCH" in res.stderr
