"""The models of test_tflite_models.py under the patch-based schedule, with
the arm-dsp kernel set (built for the host) and under AddressSanitizer and
UBSan: TFLM's bytes every time."""
from __future__ import annotations

import numpy as np
import pytest

from mcuforge.config import BuildConfig
from mcuforge.pipeline import compile_model
from mcuforge.tools import hostrun
from test_tflite_models import MODELS, as_compiled, as_source, inputs_for, tflm_outputs


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
    assert np.array_equal(got.view(np.uint8), tflm_outputs(data, xs).view(np.uint8))


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
    assert np.array_equal(got.view(np.uint8), tflm_outputs(data, xs).view(np.uint8))


def test_constant_of_the_full_shape_equals_tflm_and_stays_out_of_patch_stages(tmp_path):
    """MUL by a constant as large as the activation: equal to TFLM; never sliced row by row in a patch stage."""
    from mcuforge.tflite_writer import Net

    n = Net(41, (1, 6, 6, 3))
    x = n.conv(0, 4, (3, 3), act=1)
    c = n.const(n.rng.integers(-128, 128, (1, 6, 6, 4)).astype(np.int8), scale=np.float32(0.01), zp=4)
    y = n.binary("MUL", x, c, n.scale(x) * 0.8)
    data = n.build(n.conv(y, 2, (3, 3), stride=2))
    path = tmp_path / "full.tflite"
    path.write_bytes(data)
    plan = compile_model(path, BuildConfig(name="full"), tmp_path / "gen")
    assert "binary_const_s8" in [s.kernel for s in plan.steps]
    xs = inputs_for(plan, "full", 6)
    exe = hostrun.build(plan, tmp_path / "gen", tmp_path / "build")
    assert np.array_equal(hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1), tflm_outputs(data, xs))
    patch = compile_model(path, BuildConfig(name="full", schedule="patch"), tmp_path / "patch")
    stage = [s.node.op for s in patch.steps[:patch.patch.split]]
    assert "mul" not in stage, stage
    exe = hostrun.build(patch, tmp_path / "patch", tmp_path / "build_patch")
    assert np.array_equal(hostrun.run(patch, exe, xs)[0].reshape(len(xs), -1), tflm_outputs(data, xs))
