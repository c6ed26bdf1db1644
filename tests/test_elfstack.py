"""check-elf --model counts the model's worst-case stack in its RAM (arena + trained state +
stack), re-derives it from the build's own objects when their .su files are there (warning when
it differs from the generated header), and fails a thread stack that is too small with both
numbers and the symbol to raise (a warning with --warn-only)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcuforge.codegen.portable import c_sources, include_dirs
from mcuforge.config import BuildConfig
from mcuforge.pipeline import compile_model

pytestmark = pytest.mark.skipif(shutil.which("cc") is None, reason="no host C compiler (cc)")
ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    env = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "mcuforge", *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """tiny_1x1 generated with its stack for the host, built with -fstack-usage into one executable."""
    pytest.importorskip("torch")
    from mcuforge.frontends.torch import from_torch
    from mcuforge.zoo import ZOO

    tmp = tmp_path_factory.mktemp("elfstack")
    module, example = ZOO["tiny_1x1"]()
    calib = tmp / "calib.npy"
    np.save(calib, np.random.default_rng(0).standard_normal((4,) + tuple(example.shape[1:])).astype(np.float32))
    out = tmp / "gen"
    compile_model(from_torch(module, example, name="tiny"), BuildConfig(name="tiny", calibration=str(calib),
                                                                       stack_target="host"), out)
    objdir = tmp / "obj"
    objdir.mkdir()
    main = tmp / "main.c"
    main.write_text('#include "tiny.h"\nint main(void) { return tiny_init() || tiny_invoke(); }\n')
    objects = []
    for src in c_sources(out, "tiny") + [main]:
        obj = objdir / f"{src.name}.o"
        subprocess.run(["cc", "-O2", "-std=c99", "-fstack-usage", "-ffunction-sections",
                        *[f"-I{d}" for d in include_dirs(out)], "-c", str(src), "-o", str(obj)], check=True)
        objects.append(obj)
    exe = tmp / "tiny"
    subprocess.run(["cc", *map(str, objects), "-o", str(exe)], check=True)
    header = (out / "tiny.h").read_text()
    size = int(re.search(r"#define TINY_STACK_SIZE (\d+)", header).group(1))
    return exe, out, objdir, size


def test_ram_counts_the_stack(built):
    exe, out, _, size = built
    res = _cli("check-elf", str(exe), "--model", "tiny", "--generated", str(out), "--json")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)["model"]
    assert m["stack_bytes"] == size > 0
    assert m["ram_bytes"] == m["arena_bytes"] + m["other_ram_bytes"] + size


def test_rederived_from_the_build_objects(built):
    exe, out, objdir, size = built
    res = _cli("check-elf", str(exe), "--model", "tiny", "--generated", str(out), "--stack-objects", str(objdir),
               "--stack-target", "host", "--json")
    assert res.returncode == 0, res.stderr
    m = json.loads(res.stdout)["model"]
    assert m["stack_source"] == "build objects (.su)" and m["stack_bytes"] == size  # same compiler and flags
    # built with other flags (-O0): the number differs, check-elf says so and uses the build's own
    o0 = objdir.parent / "obj_o0"
    o0.mkdir()
    for src in c_sources(out, "tiny"):
        subprocess.run(["cc", "-O0", "-std=c99", "-fstack-usage", "-ffunction-sections",
                        *[f"-I{d}" for d in include_dirs(out)], "-c", str(src), "-o", str(o0 / f"{src.name}.o")],
                       check=True)
    res = _cli("check-elf", str(exe), "--model", "tiny", "--generated", str(out), "--stack-objects", str(o0),
               "--stack-target", "host", "--json")
    assert res.returncode == 0, res.stderr
    derived = json.loads(res.stdout)["model"]["stack_bytes"]
    assert derived != size
    assert f"TINY_STACK_SIZE is {size} in the generated header but this build's objects need {derived}" in res.stderr


def test_too_small_thread_stack_fails_with_both_numbers(built):
    exe, out, _, size = built
    small = size - 16
    res = _cli("check-elf", str(exe), "--model", "tiny", "--generated", str(out), "--thread-stack", str(small),
               "--thread-stack-symbol", "CONFIG_MAIN_STACK_SIZE")
    assert res.returncode == 3, res.stdout + res.stderr
    msg = res.stderr
    assert f"needs {size} bytes of stack" in msg and f"has {small} bytes" in msg
    assert f"raise CONFIG_MAIN_STACK_SIZE to at least {size}" in msg
    ok = _cli("check-elf", str(exe), "--model", "tiny", "--generated", str(out), "--thread-stack", str(size))
    assert ok.returncode == 0, ok.stderr
    warn = _cli("check-elf", str(exe), "--model", "tiny", "--generated", str(out), "--thread-stack", str(small),
                "--warn-only")
    assert warn.returncode == 0 and f"needs {size} bytes of stack" in warn.stderr


def test_header_of_a_generated_model_names_its_numbers(built):
    _, out, _, size = built
    text = (out / "tiny.h").read_text()
    assert "Worst-case stack of each entry point, host -O2" in text
    report = json.loads((out / "report.json").read_text())
    assert report["stack"]["stack_size"] == size and report["stack"]["computed"]


def test_model_verdict_without_the_section_table_unless_verbose(built):
    exe, out, _, size = built
    brief = _cli("check-elf", str(exe), "--model", "tiny", "--generated", str(out))
    assert brief.returncode == 0, brief.stderr
    lines = brief.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("model tiny: RAM") and f"stack {size}" in lines[0]
    verbose = _cli("check-elf", str(exe), "--model", "tiny", "--generated", str(out), "--verbose")
    assert ".text" in verbose.stdout and "section" in verbose.stdout and lines[0] in verbose.stdout
