"""The arm-dsp kernel set end to end: its generated C gives exactly the bytes
of the portable C, the NumPy reference and TFLM (MLPerf Tiny models), on the
host (plain-C intrinsics) and under QEMU on Cortex-M4 (mps2-an386) and
Cortex-M7 (mps2-an500) with the real DSP instructions; every zoo model, layer
by layer and patch-based (input in the arena and streamed); the report names
the layers left on portable kernels; --profile accounts for every layer."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcuforge.tools import hostrun, qemu
from mcuforge import reference
from mcuforge.codegen import arm_dsp
from mcuforge.tools.compare import random_inputs
from mcuforge.config import BuildConfig
from mcuforge.pipeline import compile_model, plan_model

from marks import needs_qemu
from test_tflite import MODELS, MODELS_DIR, tflm_outputs

torch = pytest.importorskip("torch")

from mcuforge.frontends.torch import from_torch  # noqa: E402
from mcuforge.zoo import ZOO  # noqa: E402

M4, M7 = "qemu-cortex-m4", "qemu-cortex-m7"


def _run_host(plan, out: Path, xs: np.ndarray) -> np.ndarray:
    exe = hostrun.build(plan, out, out.parent / f"{out.name}-host")
    return hostrun.run(plan, exe, xs)[0].reshape(len(xs), -1)


def _run_qemu(plan, out: Path, xs: np.ndarray, target: str) -> np.ndarray:
    elf = qemu.build(plan, out, out.parent / f"{out.name}-{target}", target)
    return qemu.run(plan, elf, xs, target)[0][0].reshape(len(xs), -1)


def _reference(plan, xs: np.ndarray) -> np.ndarray:
    return np.stack([reference.run(plan, x, poison=i).outputs[plan.outputs[0]].reshape(-1)
                     for i, x in enumerate(xs)])


# ------------------------------------------------------------------ zoo

# (zoo model, schedule, input streamed, Cortex-M target or None): every zoo
# model layer by layer on the host, patch schedules of the convolutional ones,
# a few of each under QEMU on both cores.
ZOO_CASES = [
    ("mbv2_blocks", "layer", False, M7), ("mbv2_blocks", "patch", True, M4),
    ("mbv1", "patch", False, M7), ("resnet8", "layer", False, M4),
    ("dscnn", "layer", False, M7), ("dscnn", "patch", True, None),
    ("fc_autoencoder", "layer", False, M4),
    ("odd_shapes", "layer", False, M4), ("odd_shapes", "patch", True, M7),
    ("concat_net", "patch", False, None),
    ("tiny_1x1", "layer", False, None),
]


@pytest.fixture(scope="module")
def zoo_calibration(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo-calibration")
    paths = {}
    for name in ZOO:
        _module, example = ZOO[name]()
        paths[name] = root / f"{name}.npy"
        rng = np.random.default_rng(sum(map(ord, name)))
        np.save(paths[name], rng.standard_normal((8,) + tuple(example.shape[1:])).astype(np.float32))
    return paths


@pytest.mark.parametrize("name,schedule,stream,target", ZOO_CASES,
                         ids=[f"{n}-{s}{'-stream' if st else ''}" for n, s, st, _ in ZOO_CASES])
def test_zoo_arm_dsp_equals_portable_and_reference(name, schedule, stream, target, zoo_calibration, tmp_path):
    module, example = ZOO[name]()
    graph = from_torch(module, example, name=name)
    config = BuildConfig(name=name, calibration=str(zoo_calibration[name]), schedule=schedule,
                         input_stream=stream or None)
    # the portable plan's reference stands for the portable C (test_zoo, test_patch check that equality)
    portable = plan_model(graph, config)
    out = tmp_path / "arm-dsp"
    plan = compile_model(graph, config.merged(kernels="arm-dsp"), out)
    xs = random_inputs(plan, 2, seed=3)
    want = _reference(plan, xs)
    assert np.array_equal(_reference(portable, xs), want)
    assert np.array_equal(_run_host(plan, out, xs), want), f"{name} {schedule}: arm-dsp C != reference"
    if target is not None and not qemu.tools_missing():
        got = _run_qemu(plan, out, xs[:1], target)
        assert np.array_equal(got, want[:1]), f"{name} {schedule} on {target}: arm-dsp output differs"
    # the arena grows by the stated scratch only: at most the largest kernel scratch
    scratch = max(arm_dsp.scratch_size(s) for s in plan.steps)
    assert plan.arena_size <= portable.arena_size + scratch
    report = json.loads((out / "report.json").read_text())
    assert report["portable_fallback_layers"] == arm_dsp.fallback_layers(plan)
    assert all(L["function"].startswith("mcf_dsp_") for L in report["layers"]
               if L["name"] not in report["portable_fallback_layers"] and L["kernel"] != "copy_tile_s8")


# -------------------------------------------------------------- MLPerf Tiny

needs_models = pytest.mark.skipif(
    not all((MODELS_DIR / f).is_file() for f in MODELS.values()),
    reason=f"the MLPerf Tiny reference models are not in {MODELS_DIR} (see ../shared/models/README.md)")


@pytest.fixture(scope="module", params=sorted(MODELS))
def mlperf_dsp(request, tmp_path_factory):
    """(key, plan, output dir, inputs, TFLM outputs) of the arm-dsp build, once per model."""
    key = request.param
    path = MODELS_DIR / MODELS[key]
    if not path.is_file():
        pytest.skip(f"the MLPerf Tiny reference models are not in {MODELS_DIR} (see ../shared/models/README.md)")
    out = tmp_path_factory.mktemp(f"dsp-{key}") / "gen"
    plan = compile_model(path, BuildConfig(name=key, kernels="arm-dsp"), out)
    xs = random_inputs(plan, 4, seed=sum(map(ord, key)))
    return key, plan, out, xs, tflm_outputs(path, xs)


@needs_models
def test_mlperf_host_equals_tflm_and_reference(mlperf_dsp):
    key, plan, out, xs, want = mlperf_dsp
    assert np.array_equal(_run_host(plan, out, xs), want), f"{key}: arm-dsp C on the host differs from TFLM"
    assert np.array_equal(_reference(plan, xs[:1]), want[:1]), f"{key}: reference differs from TFLM"
    assert not arm_dsp.fallback_layers(plan), key  # every layer, softmax included, on an arm-dsp kernel


@needs_models
@needs_qemu
@pytest.mark.parametrize("target", [M4, M7])
def test_mlperf_cortex_m_equals_tflm(mlperf_dsp, target):
    key, plan, out, xs, want = mlperf_dsp
    assert np.array_equal(_run_qemu(plan, out, xs[:1], target), want[:1]), f"{key} on {target} differs from TFLM"


# ------------------------------------------------------------------ profile

@needs_qemu
def test_cli_profile_accounts_for_every_layer(zoo_calibration, tmp_path):
    module, example = ZOO["dscnn"]()
    out = tmp_path / "gen"
    plan = compile_model(from_torch(module, example, name="dscnn"),
                         BuildConfig(name="dscnn", calibration=str(zoo_calibration["dscnn"]), kernels="arm-dsp"), out)
    x = tmp_path / "x.npy"
    np.save(x, np.random.default_rng(5).integers(-128, 128, (1,) + tuple(example.shape[1:])).astype(np.int8))
    res = subprocess.run([sys.executable, "-m", "mcuforge", "run", str(out), "--input", str(x), "--check",
                          "--target", M4, "--profile"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "check passed" in res.stdout
    total = int(res.stdout.split("instructions per invoke (traced): ")[1].split(";")[0])
    rows = [line.split() for line in res.stdout.splitlines() if line[:2].strip().isdigit()]
    assert [int(r[0]) for r in rows] == list(range(len(plan.steps)))
    layer_instr = [int(r[-4].replace(",", "")) for r in rows]
    assert all(n > 0 for n in layer_instr)
    macs = [int(r[-5].replace(",", "")) for r in rows]
    assert macs == [s.macs for s in plan.steps]
    # every kernel call is inside the invoke; what is left is the invoke's own code
    assert 0 < total - sum(layer_instr) < 20 * len(plan.steps) + 100
    assert any("mcf_dsp_conv2d_s8" in line for line in res.stdout.splitlines())
    res = subprocess.run([sys.executable, "-m", "mcuforge", "run", str(out), "--input", str(x), "--profile"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--profile" in res.stderr and "Traceback" not in res.stderr
