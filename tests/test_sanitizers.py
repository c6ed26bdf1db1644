"""The generated C under AddressSanitizer and UndefinedBehaviorSanitizer.

Every zoo model, the four MLPerf Tiny models and their patch schedules
(input in the arena and input streamed) are built once each with the host
gcc and ``-fsanitize=address,undefined -fno-sanitize-recover=all`` and run on
a few inputs, including the extreme ones (all -128, all 127): any sanitizer
report aborts the program, which fails the test; the outputs must also equal
the NumPy reference.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mcuforge.tools import hostrun
from mcuforge import reference
from mcuforge.tools.compare import random_inputs
from mcuforge.config import BuildConfig
from mcuforge.ir import McuforgeError
from mcuforge.pipeline import compile_model

SANITIZE = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g"]
MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models"
MLPERF = {"vww": "vww_96_int8.tflite", "ic": "pretrainedResnet_quant.tflite", "kws": "kws_ref_model.tflite",
          "ad": "ad01_int8.tflite"}
SCHEDULES = {"layer": BuildConfig(), "patch": BuildConfig(schedule="patch"),
             "patch-stream": BuildConfig(schedule="patch", input_stream=True)}

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc not installed")


@pytest.fixture(autouse=True)
def sanitizer_env(monkeypatch):
    # leak checking needs ptrace, which containers often forbid; the generated code never allocates
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0:exitcode=86")
    monkeypatch.setenv("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=87")


def inputs(plan, n: int = 3) -> np.ndarray:
    xs = random_inputs(plan, n, seed=1)
    return np.concatenate([np.full((1,) + xs.shape[1:], -128, np.int8), np.full((1,) + xs.shape[1:], 127, np.int8),
                           xs])


def run_sanitized(plan, out: Path, tmp: Path) -> None:
    exe = hostrun.build(plan, out, tmp / "asan", opt="-O1", extra_flags=SANITIZE)
    xs = inputs(plan)
    got = hostrun.run(plan, exe, xs)  # a sanitizer report exits non-zero: McuforgeError with the report
    for i, x in enumerate(xs):
        ref = reference.run(plan, x).outputs
        for k, o in enumerate(plan.outputs):
            assert np.array_equal(got[k][i].reshape(-1), ref[o].reshape(-1)), f"input {i} output {o}"


@pytest.mark.parametrize("name", sorted(__import__("mcuforge.zoo", fromlist=["ZOO"]).ZOO))
def test_zoo_under_sanitizers(name, tmp_path):
    pytest.importorskip("torch")
    from test_zoo import compile_zoo

    plan, _ = compile_zoo(name, tmp_path / "gen")
    run_sanitized(plan, tmp_path / "gen", tmp_path)


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("key", sorted(MLPERF))
def test_mlperf_under_sanitizers(key, schedule, tmp_path):
    path = MODELS_DIR / MLPERF[key]
    if not path.is_file():
        pytest.skip(f"the MLPerf Tiny reference models are not in {MODELS_DIR} (see ../shared/models/README.md)")
    cfg = SCHEDULES[schedule].merged(name=key)
    try:
        plan = compile_model(path, cfg, tmp_path / "gen")
    except McuforgeError as err:
        if schedule != "layer" and "no layer prefix of this model can run on patches" in str(err):
            pytest.skip(f"{key} has no patch schedule: {err}")
        raise
    run_sanitized(plan, tmp_path / "gen", tmp_path)


# ------------------------------------------- the sanitizers do report (the tests above can fail)


def _edge_fc(tmp_path):
    from test_robustness import _fc_tflite

    from mcuforge.bounds import INT32_MAX, input_swing

    k, zp = 16, 3
    edge = INT32_MAX - 127 * k * input_swing(-zp)
    path = tmp_path / "fc_edge.tflite"
    path.write_bytes(_fc_tflite(edge, k, in_zp=zp))
    out = tmp_path / "gen"
    return compile_model(path, BuildConfig(name="fc_edge"), out), out, edge, k, zp


def test_undefined_behaviour_is_reported(tmp_path):
    """The accumulator bound is where undefined behaviour starts: the compiled edge layer,
    its bias raised in the generated C beyond what the compiler would accept, overflows
    int32 on the all-127 input and UBSan stops the program."""
    plan, out, edge, k, zp = _edge_fc(tmp_path)
    weights = out / "fc_edge_weights.c"
    text = weights.read_text()
    assert text.count(str(edge)) == 1
    weights.write_text(text.replace(str(edge), str((1 << 31) - 1 - 127 * k * (127 - zp) + 1)))
    exe = hostrun.build(plan, out, tmp_path / "asan", opt="-O1", extra_flags=SANITIZE)
    ones = np.full((1, k), 127, np.int8)
    with pytest.raises(McuforgeError, match="signed integer overflow"):
        hostrun.run(plan, exe, ones)
    hostrun.run(plan, exe, ones - 1)  # one step less on each input: no overflow, no report


def test_out_of_bounds_read_is_reported(tmp_path):
    """A layer told to read more weights than its array holds: AddressSanitizer stops it."""
    plan, out, *_ = _edge_fc(tmp_path)
    source = out / "fc_edge.c"
    text = source.read_text()
    assert text.count(".out_features = 4,") == 1
    source.write_text(text.replace(".out_features = 4,", ".out_features = 5,"))
    exe = hostrun.build(plan, out, tmp_path / "asan", opt="-O1", extra_flags=SANITIZE)
    with pytest.raises(McuforgeError, match="AddressSanitizer"):
        hostrun.run(plan, exe, random_inputs(plan, 1, seed=0))
