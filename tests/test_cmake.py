"""cmake/mcuforge.cmake in a plain CMake project (no Zephyr), built with the
real cmake and ninja: the generated model runs and equals the reference; the
generator re-runs when the model changes, and a build with nothing changed
does nothing; the runtime kernels compile once for two models; CHECK_ELF
writes its report."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from mcuforge import reference
from mcuforge.plan import Plan
from test_cli import small_onnx

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "tests" / "cmake_project"
CMAKE, NINJA = shutil.which("cmake"), shutil.which("ninja")

pytestmark = pytest.mark.skipif(CMAKE is None or NINJA is None,
                                reason="cmake and ninja are needed (apt-get install cmake ninja-build)")


def ninja(build: Path, *args: str) -> subprocess.CompletedProcess:
    res = subprocess.run([NINJA, "-C", str(build), *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return res


def generator_sources_newer_than(t: float) -> bool:
    """A generator source edited since the last generation (someone working in
    this tree while the tests run) rightly re-runs the generator."""
    pkg = ROOT / "python" / "mcuforge"
    return any(p.stat().st_mtime > t for p in list(pkg.rglob("*.py")) + list((pkg / "runtime").rglob("*.[ch]")))


def ninja_no_work(build: Path) -> str:
    """ninja's output for a build with nothing changed (retried only when a
    generator source really changed since the outputs were generated)."""
    for _ in range(3):
        generated = min(p.stat().st_mtime for p in (build / "mcuforge").glob("net_*/net_*.c"))
        res = ninja(build)
        if "ninja: no work to do." in res.stdout or not generator_sources_newer_than(generated):
            return res.stdout
    return res.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cmake")
    model = small_onnx(tmp / "small.onnx")
    calib = tmp / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((8, 3, 12, 12)).astype(np.float32))
    build = tmp / "build"
    res = subprocess.run([CMAKE, "-G", "Ninja", "-S", str(PROJECT), "-B", str(build), f"-DMODEL={model}",
                          f"-DCALIBRATION={calib}"], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    first = ninja(build)
    return tmp, model, build, first


def run_infer(tmp: Path, build: Path, plan: Plan, n: int = 4):
    rng = np.random.default_rng(3)
    shape = plan.graph.tensors[plan.input].shape
    xs = rng.integers(-128, 128, (n,) + shape[1:]).astype(np.int8)
    (tmp / "in.bin").write_bytes(xs.tobytes())
    res = subprocess.run([str(build / "infer"), str(tmp / "in.bin"), str(tmp / "a.bin"), str(tmp / "b.bin")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return xs, np.frombuffer((tmp / "a.bin").read_bytes(), np.int8), np.frombuffer((tmp / "b.bin").read_bytes(),
                                                                                    np.int8)


def test_builds_runs_and_equals_reference(project):
    tmp, _model, build, first = project
    assert "mcuforge: generating net_a" in first.stdout and "mcuforge: generating net_b" in first.stdout
    gen = build / "mcuforge"
    assert sorted(p.name for p in gen.iterdir() if p.is_dir()) == ["net_a", "net_b"]
    plan = Plan.load(gen / "net_a")
    xs, got_a, got_b = run_infer(tmp, build, plan)
    want = np.concatenate([reference.run(plan, x).outputs[plan.outputs[0]].reshape(-1) for x in xs])
    assert np.array_equal(got_a, want)
    assert np.array_equal(got_b, want)


def test_nothing_changed_means_no_work(project):
    _tmp, _model, build, _first = project
    out = ninja_no_work(build)
    assert "ninja: no work to do." in out, out


def test_generator_outputs_only_in_build_dir_and_depend_on_generator(project):
    _tmp, model, build, _first = project
    out = build / "mcuforge" / "net_a" / "net_a.c"
    inputs = ninja(build, "-t", "query", str(out)).stdout
    assert str(model) in inputs
    for dep in ("python/mcuforge/pipeline.py", "python/mcuforge/codegen/portable.py",
                "python/mcuforge/runtime/src/mcf_conv2d.c", "python/mcuforge/runtime/include/mcuforge/kernels.h"):
        assert str(ROOT / dep) in inputs, f"{dep} is not a dependency of the generator step"
    assert not list(PROJECT.glob("mcuforge*")), "the generator wrote into the source directory"


def test_runtime_compiled_once_for_two_models(project):
    _tmp, _model, build, _first = project
    commands = ninja(build, "-t", "commands", "infer").stdout.splitlines()
    conv = [c for c in commands if "mcf_conv2d.c" in c and " -c " in f" {c} "]
    assert len(conv) == 1, conv
    models = [c for c in commands if c.endswith(("net_a.c", "net_b.c")) or "net_a.c " in c or "net_b.c " in c]
    assert len([c for c in models if " -c " in c]) == 2


def test_check_elf_report_written(project):
    _tmp, _model, build, _first = project
    report = json.loads((build / "mcuforge" / "net_a_memory.json").read_text())
    assert report["fits"] is True and report["sram_budget"] == 64 * 1024
    plan = Plan.load(build / "mcuforge" / "net_a")
    assert report["model"]["arena_bytes"] == plan.arena_size


def test_touching_the_model_reruns_the_generator(project):
    tmp, model, build, _first = project
    time.sleep(0.05)
    os.utime(model)  # touch: now, newer than the generated files
    res = ninja(build)
    assert "mcuforge: generating net_a" in res.stdout and "mcuforge: generating net_b" in res.stdout
    assert "ninja: no work to do." in ninja_no_work(build)
    plan = Plan.load(build / "mcuforge" / "net_a")
    xs, got_a, _ = run_infer(tmp, build, plan, n=2)
    want = np.concatenate([reference.run(plan, x).outputs[plan.outputs[0]].reshape(-1) for x in xs])
    assert np.array_equal(got_a, want)


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
def test_cross_build_for_cortex_m_with_the_toolchain_file(tmp_path):
    model = small_onnx(tmp_path / "small.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((8, 3, 12, 12)).astype(np.float32))
    build = tmp_path / "build"
    res = subprocess.run([CMAKE, "-G", "Ninja", "-S", str(PROJECT), "-B", str(build),
                          f"-DCMAKE_TOOLCHAIN_FILE={ROOT / 'cmake' / 'toolchain-arm-none-eabi.cmake'}",
                          "-DMCUFORGE_CPU=cortex-m7", f"-DMODEL={model}", f"-DCALIBRATION={calib}"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    ninja(build)
    report = json.loads((build / "mcuforge" / "net_a_memory.json").read_text())
    assert report["machine"] == "EM_ARM" and report["fits"]
    assert report["model"]["arena_bytes"] == Plan.load(build / "mcuforge" / "net_a").arena_size
    assert report["model"]["runtime_code_bytes"] > 0
