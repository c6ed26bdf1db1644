"""The zoo end to end: PyTorch -> int8 C; the C equals the NumPy reference
bit for bit at -O0, -O2 and -Os; ARENA_SIZE equals the arena symbol; the C
cross-compiles for Cortex-M4 without warnings; compiling twice gives the
same bytes."""
from __future__ import annotations

import filecmp
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mcuforge.tools import hostrun
from mcuforge import reference  # noqa: E402
from mcuforge.codegen.portable import c_sources, include_dirs  # noqa: E402
from mcuforge.config import BuildConfig  # noqa: E402
from mcuforge.tools.elfcheck import read_elf  # noqa: E402
from mcuforge.frontends.torch import from_torch  # noqa: E402
from mcuforge.pipeline import compile_model  # noqa: E402
from mcuforge.zoo import ZOO  # noqa: E402

N_INPUTS = 6
ARM_GCC = shutil.which("arm-none-eabi-gcc")


def compile_zoo(name: str, outdir: Path):
    module, example = ZOO[name]()
    graph = from_torch(module, example, name=name)
    rng = np.random.default_rng(sum(map(ord, name)))
    calib = outdir.parent / f"{name}_calib.npy"
    np.save(calib, rng.standard_normal((16,) + tuple(example.shape[1:])).astype(np.float32))
    plan = compile_model(graph, BuildConfig(name=name, calibration=str(calib)), outdir)
    return plan, graph


@pytest.fixture(scope="module", params=sorted(ZOO))
def compiled(request, tmp_path_factory):
    name = request.param
    out = tmp_path_factory.mktemp(name) / "gen"
    plan, graph = compile_zoo(name, out)
    return name, plan, out, graph


def test_zoo_is_big_enough():
    assert len(ZOO) >= 8


def test_c_equals_reference(compiled, tmp_path):
    name, plan, out, _ = compiled
    rng = np.random.default_rng(7)
    size = plan.graph.tensors[plan.input].size
    shape = plan.graph.tensors[plan.input].shape
    xs = rng.integers(-128, 128, (N_INPUTS, size)).astype(np.int8).reshape((N_INPUTS,) + shape[1:])
    want = [reference.run(plan, x, poison=11).outputs for x in xs]
    for opt in ("-O0", "-O2", "-Os"):
        exe = hostrun.build(plan, out, tmp_path / opt.strip("-"), opt=opt)
        got = hostrun.run(plan, exe, xs)
        for i in range(N_INPUTS):
            for k, o in enumerate(plan.outputs):
                assert np.array_equal(want[i][o].reshape(-1), got[k][i].reshape(-1)), \
                    f"{name} {opt} input {i} output {o}: C differs from the reference"


def test_arena_size_equals_symbol(compiled, tmp_path):
    name, plan, out, _ = compiled
    header = (out / f"{name}.h").read_text()
    assert f"#define {name.upper()}_ARENA_SIZE {plan.arena_size}\n" in header
    obj = tmp_path / f"{name}.o"
    inc = [f"-I{d}" for d in include_dirs(out)]
    subprocess.run(["gcc", "-std=c99", "-c", "-O2", *inc, str(out / f"{name}.c"), "-o", str(obj)], check=True)
    sym = read_elf(obj).symbol(f"{name}_arena")
    assert sym is not None and sym.size == plan.arena_size


@pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
def test_cortex_m4_cross_compile_without_warnings(compiled, tmp_path):
    name, plan, out, _ = compiled
    inc = [f"-I{d}" for d in include_dirs(out)]
    for src in c_sources(out, name):
        obj = tmp_path / (src.stem + ".o")
        res = subprocess.run([ARM_GCC, "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16",
                              "-std=c99", "-Os", "-Wall", "-Wextra", "-Werror", *inc, "-c", str(src), "-o", str(obj)],
                             capture_output=True, text=True)
        assert res.returncode == 0 and res.stderr == "", f"{src.name}: {res.stderr}"
    sym = read_elf(tmp_path / f"{name}.o").symbol(f"{name}_arena")
    assert sym is not None and sym.size == plan.arena_size


def test_compile_is_deterministic(compiled, tmp_path):
    name, plan, out, graph = compiled
    again = tmp_path / "again"
    compile_zoo(name, again)
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file() and p.suffix in (".c", ".h", ".json"))
    assert files
    for rel in files:
        assert filecmp.cmp(out / rel, again / rel, shallow=False), f"{rel} differs between two compiles"
