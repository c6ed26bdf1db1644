"""The models of test_tflite_models.py under the patch-based schedule, with
the arm-dsp kernel set (built for the host) and under AddressSanitizer and
UBSan: TFLM's bytes every time."""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge.config import BuildConfig
from mcuforge.pipeline import compile_model
from mcuforge.tools import hostrun
from test_tflite_models import MODELS, as_compiled, as_source, inputs_for, tflm_run


@pytest.mark.parametrize("name,options", [("vector_add", dict(schedule="patch")),
                                          ("transpose_prelu", dict(schedule="patch")),
                                          ("float_io", dict(schedule="patch")),
                                          ("batch_norm", dict(kernels="arm-dsp")),
                                          ("reductions", dict(kernels="arm-dsp"))])
def test_patch_schedule_and_arm_dsp_kernels_equal_tflm(name, options, tmp_path):
    """The same models under the patch-based schedule and with the arm-dsp kernel set (built for the host)."""
    data = MODELS[name]()
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name=name, **options), tmp_path / "gen")
    if "schedule" in options:
        assert plan.schedule == "patch"
    xs = inputs_for(plan, name, 6)
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    got = as_source(plan, name, hostrun.run(plan, exe, as_compiled(plan, name, xs))[0].reshape(len(xs), -1))
    assert np.array_equal(got.view(np.uint8), tflm_run(data, xs).view(np.uint8))


@pytest.mark.parametrize("name", sorted(MODELS))
def test_under_sanitizers(name, tmp_path, monkeypatch):
    """The generated C of each model under AddressSanitizer and UBSan, on random and extreme inputs:
    no report, and TFLM's bytes."""
    import shutil

    from test_sanitizers import SANITIZE

    if shutil.which("gcc") is None:
        pytest.skip("host gcc not installed")
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0:exitcode=86")
    monkeypatch.setenv("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1:exitcode=87")
    data = MODELS[name]()
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name=name), tmp_path / "gen")
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build", opt="-O1", cc="gcc", extra_flags=SANITIZE)
    xs = inputs_for(plan, name, 4)
    if name != "float_io":
        xs = np.concatenate([xs, np.full((1,) + xs.shape[1:], -128, np.int8), np.full((1,) + xs.shape[1:], 127, np.int8)])
    got = as_source(plan, name, hostrun.run(plan, exe, as_compiled(plan, name, xs))[0].reshape(len(xs), -1))
    assert np.array_equal(got.view(np.uint8), tflm_run(data, xs).view(np.uint8))
