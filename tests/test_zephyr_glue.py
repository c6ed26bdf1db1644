"""The Zephyr glue without a Zephyr tree: zephyr_module/Kconfig evaluated by
kconfiglib gives a .config, whose CONFIG_ values are handed to CMake the way
Zephyr's import_kconfig() does, in a CMake project that defines what
mcuforge.cmake takes as the sign of a Zephyr build (zephyr_library_named);
mcuforge_add_model() then writes the generator's command line (checked in
build.ninja) and the generator runs with real cmake and ninja.

* Budgets: the generator checks what it knows (arena, model RAM, weights)
  before anything is compiled, also with the post-link check on, so a model
  too large for the board ends in our message, not in the linker;
  CONFIG_MCUFORGE_MEMORY_CHECK_FAIL=n makes it a warning.
* Training: TRAINING, LEARNING_RATE, MOMENTUM and TRAIN_BIAS_LAYERS come from Kconfig;
  an explicit argument wins and the build says so.
"""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_cli import small_onnx
from test_kconfig import enable, load, write_config

ROOT = Path(__file__).resolve().parent.parent
CMAKE, NINJA = shutil.which("cmake"), shutil.which("ninja")

pytestmark = pytest.mark.skipif(CMAKE is None or NINJA is None,
                                reason="cmake and ninja are needed (apt-get install cmake ninja-build)")

HARNESS = """cmake_minimum_required(VERSION 3.20)
project(glue C)
# What a Zephyr build gives the module: zephyr_library_named() and CONFIG_* variables.
function(zephyr_library_named name)
endfunction()
include(${CMAKE_CURRENT_LIST_DIR}/config.cmake)
include(${MCUFORGE_ROOT_DIR}/cmake/mcuforge.cmake)
add_executable(app main.c)
set(logical_target_for_zephyr_elf app)
mcuforge_add_model(app MODEL ${MODEL} NAME net CALIBRATION ${CALIBRATION} ${EXTRA})
"""


def import_kconfig(dot_config: Path) -> str:
    """CMake set() lines for a .config, as Zephyr's import_kconfig() reads it (quotes dropped)."""
    lines = []
    for line in dot_config.read_text().splitlines():
        m = re.match(r"^(CONFIG_\w+)=(.*)$", line)
        if m:
            value = m.group(2)
            if value.startswith('"'):
                value = value[1:-1]
            lines.append(f'set({m.group(1)} "{value}")')
    return "\n".join(lines) + "\n"


def configure(tmp: Path, kconf, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    """Configure the harness with the Kconfig values of `kconf` and extra mcuforge_add_model arguments."""
    src = tmp / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "CMakeLists.txt").write_text(HARNESS)
    (src / "main.c").write_text("int main(void) { return 0; }\n")
    (src / "config.cmake").write_text(import_kconfig(write_config(kconf, tmp / ".config")))
    model, calibration = tmp / "small.onnx", tmp / "calibration.npy"
    if not model.exists():
        small_onnx(model)
        np.save(calibration, np.random.default_rng(1).standard_normal((8, 3, 12, 12)).astype(np.float32))
    build = tmp / "build"
    shutil.rmtree(build, ignore_errors=True)
    res = subprocess.run([CMAKE, "-G", "Ninja", "-S", str(src), "-B", str(build), f"-DMCUFORGE_ROOT_DIR={ROOT}",
                          f"-DMODEL={model}", f"-DCALIBRATION={calibration}", f"-DEXTRA={';'.join(extra)}", f"-DMCUFORGE_PYTHON={sys.executable}"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    return res, build


def generator_args(build: Path) -> list[str]:
    """The arguments of `python -m mcuforge compile` in build.ninja."""
    text = (build / "build.ninja").read_text()
    m = re.search(r"-m mcuforge -q compile (.*?)(?:\n| && )", text)
    assert m, text[-2000:]
    return shlex.split(m.group(1))


def option(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def generate(build: Path) -> subprocess.CompletedProcess:
    return subprocess.run([NINJA, "-C", str(build), "mcuforge_generate_net"], capture_output=True, text=True)


# ------------------------------------------------------------------ budgets

def test_model_over_the_sram_budget_fails_in_the_generator_with_the_post_link_check_on(tmp_path):
    # The small model's arena is larger than 1 KiB. With the post-link check on (the default),
    # the generator still gets the budget and stops before anything is compiled.
    kconf = enable(load(tmp_path, sram_kb=16), MCUFORGE_SRAM_BUDGET_KB=1)
    assert kconf.syms["MCUFORGE_MEMORY_CHECK"].str_value == "y"
    assert kconf.syms["MCUFORGE_MEMORY_CHECK_FAIL"].str_value == "y"
    _, build = configure(tmp_path, kconf)
    args = generator_args(build)
    assert option(args, "--sram-budget") == "1K" and "--warn-only" not in args
    res = generate(build)
    out = res.stdout + res.stderr
    assert res.returncode != 0
    m = re.search(r"mcuforge: error: model 'net' needs (\d+) bytes of SRAM \(arena (\d+)\), the budget allows 1024: "
                  r"raise --sram-budget \(CONFIG_MCUFORGE_SRAM_BUDGET_KB\) to at least (\d+)K", out)
    assert m, out
    need = int(m.group(1))
    assert need > 1024 and int(m.group(3)) == (need + 1023) // 1024
    assert not [p for p in (build / "mcuforge").rglob("*") if p.is_file()]  # nothing half-written


def test_memory_check_fail_off_makes_the_generators_check_a_warning(tmp_path):
    kconf = enable(load(tmp_path, sram_kb=16), MCUFORGE_SRAM_BUDGET_KB=1, MCUFORGE_MEMORY_CHECK_FAIL="n")
    _, build = configure(tmp_path, kconf)
    args = generator_args(build)
    assert option(args, "--sram-budget") == "1K" and "--warn-only" in args
    res = generate(build)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"WARNING: model 'net' needs \d+ bytes of SRAM .*\(CONFIG_MCUFORGE_SRAM_BUDGET_KB\)", res.stdout)
    assert (build / "mcuforge" / "net" / "net.c").is_file()
    # The post-link check is still there, warning only, with the same budget.
    text = (build / "build.ninja").read_text()
    assert re.search(r"check-elf .* --model net --sram-budget 1K .*--warn-only", text)


def test_model_within_the_budget_generates(tmp_path):
    kconf = enable(load(tmp_path, sram_kb=16))  # budget: the board's 16 KiB
    _, build = configure(tmp_path, kconf)
    assert option(generator_args(build), "--sram-budget") == "16K"
    res = generate(build)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "WARNING" not in res.stdout + res.stderr


# ----------------------------------------------------------------- training

def test_training_options_come_from_kconfig(tmp_path):
    kconf = enable(load(tmp_path), MCUFORGE_TRAINING_BIAS="y")
    assert kconf.syms["MCUFORGE_TRAINING_LEARNING_RATE"].str_value == "0.05"  # the defaults
    assert kconf.syms["MCUFORGE_TRAINING_BIAS_LAYERS"].str_value == "4"
    assert kconf.syms["MCUFORGE_TRAINING_MOMENTUM"].str_value == "0"
    _, build = configure(tmp_path, kconf)
    args = generator_args(build)
    flags = ("--training", "--learning-rate", "--momentum", "--train-bias-layers")
    assert tuple(option(args, f) for f in flags) == ("bias", "0.05", "0", "4")

    kconf = enable(load(tmp_path), MCUFORGE_TRAINING_SPARSE="y", MCUFORGE_TRAINING_LEARNING_RATE="0.125",
                   MCUFORGE_TRAINING_MOMENTUM="0.9", MCUFORGE_TRAINING_BIAS_LAYERS=2)
    _, build = configure(tmp_path, kconf)
    args = generator_args(build)
    assert tuple(option(args, f) for f in flags) == ("sparse", "0.125", "0.9", "2")
    res = generate(build)  # the generator takes the momentum: the header and the trained state say so
    assert res.returncode == 0, res.stdout + res.stderr
    header = next(build.rglob("mcuforge/net/net.h")).read_text()
    assert "#define NET_TRAIN_MOMENTUM 0.9f" in header and "momentum velocities" in header


def test_no_training_options_without_training(tmp_path):
    kconf = enable(load(tmp_path))
    assert kconf.syms["MCUFORGE_TRAINING_NONE"].str_value == "y"
    assert kconf.syms["MCUFORGE_TRAINING_LEARNING_RATE"].str_value == ""  # not defined without training
    _, build = configure(tmp_path, kconf)
    args = generator_args(build)
    assert option(args, "--training") == "none"
    assert "--learning-rate" not in args and "--train-bias-layers" not in args and "--momentum" not in args


def test_explicit_training_arguments_win_and_the_build_says_so(tmp_path):
    kconf = enable(load(tmp_path), MCUFORGE_TRAINING_BIAS="y")
    data = tmp_path / "train.npz"
    data.write_bytes(b"")  # only a dependency of the generator step here
    res, build = configure(tmp_path, kconf, "TRAINING", "sparse", "LEARNING_RATE", "0.01", "MOMENTUM", "0.5",
                           "TRAIN_BIAS_LAYERS", "3",
                           "TRAIN_WEIGHT_LAYERS", "1,2", "TRAIN_WEIGHT_RATIO", "1,0.5", "TRAIN_DATA", str(data))
    out = res.stdout + res.stderr
    for line in ("mcuforge: net: TRAINING sparse (argument of mcuforge_add_model) overrides "
                 "CONFIG_MCUFORGE_TRAINING (bias)",
                 "mcuforge: net: LEARNING_RATE 0.01 (argument of mcuforge_add_model) overrides "
                 "CONFIG_MCUFORGE_TRAINING_LEARNING_RATE (0.05)",
                 "mcuforge: net: MOMENTUM 0.5 (argument of mcuforge_add_model) overrides "
                 "CONFIG_MCUFORGE_TRAINING_MOMENTUM (0)",
                 "mcuforge: net: TRAIN_BIAS_LAYERS 3 (argument of mcuforge_add_model) overrides "
                 "CONFIG_MCUFORGE_TRAINING_BIAS_LAYERS (4)"):
        assert line in out, out
    args = generator_args(build)
    assert [option(args, f) for f in ("--training", "--learning-rate", "--momentum", "--train-bias-layers",
                                      "--train-weight-layers", "--train-weight-ratio", "--train-data")] == \
        ["sparse", "0.01", "0.5", "3", "1,2", "1,0.5", str(data)]
    # An argument equal to the Kconfig value is not reported as an override.
    res, build = configure(tmp_path, kconf, "LEARNING_RATE", "0.05")
    assert "overrides" not in res.stdout + res.stderr
