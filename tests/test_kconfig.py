"""zephyr_module/Kconfig loaded with kconfiglib (no Zephyr tree): the symbols
of DESIGN.md with help texts, defaults (the SRAM budget follows the board's
devicetree), ranges, choices and dependencies; a .config written from it
drives the generator (config.from_kconfig and compile --kconfig)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

kconfiglib = pytest.importorskip("kconfiglib")

from mcuforge.config import BuildConfig, from_kconfig  # noqa: E402
from mcuforge.plan import Plan  # noqa: E402
from test_cli import small_onnx  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODULE_KCONFIG = ROOT / "zephyr_module" / "Kconfig"

DESIGN_SYMBOLS = [
    "MCUFORGE", "MCUFORGE_SRAM_BUDGET_KB", "MCUFORGE_FLASH_BUDGET_KB",
    "MCUFORGE_SCHEDULE_LAYER", "MCUFORGE_SCHEDULE_PATCH", "MCUFORGE_SCHEDULE_AUTO", "MCUFORGE_PATCH_GRID",
    "MCUFORGE_TRAINING_NONE", "MCUFORGE_TRAINING_BIAS", "MCUFORGE_TRAINING_SPARSE", "MCUFORGE_TRAINING_FULL",
    "MCUFORGE_KERNELS_PORTABLE", "MCUFORGE_KERNELS_ARM_DSP", "MCUFORGE_MEMORY_CHECK",
    "MCUFORGE_MEMORY_CHECK_FAIL",
]


STUB = """
# Zephyr's scripts/kconfig/kconfigfunctions.py, reduced to what zephyr_module/Kconfig calls;
# the board's chosen memory regions come from MCUFORGE_TEST_CHOSEN ("zephyr,sram=320;zephyr,flash=1024").
import os


def _chosen():
    out = {}
    for item in filter(None, os.environ.get("MCUFORGE_TEST_CHOSEN", "").split(";")):
        k, v = item.split("=")
        out[k] = int(v)
    return out


def dt_chosen_enabled(kconf, _, chosen):
    return "y" if chosen in _chosen() else "n"


def dt_chosen_reg(kconf, name, chosen, index="0", unit=None):
    return str(_chosen().get(chosen, 0))


functions = {
    "dt_chosen_enabled": (dt_chosen_enabled, 1, 1),
    "dt_chosen_reg_size_int": (dt_chosen_reg, 1, 3),
}
"""


CPU_SYMBOLS = ("CPU_CORTEX_M0", "CPU_CORTEX_M3", "CPU_CORTEX_M4", "CPU_CORTEX_M7", "CPU_CORTEX_M33",
               "CPU_CORTEX_M55")


def load(tmp_path: Path, sram_kb: int | None = None, flash_kb: int | None = None, arm: bool = True,
         cpu: str = "CPU_CORTEX_M4"):
    """A top-level Kconfig standing in for Zephyr's (the ARM symbol and the
    core symbol)
    and a stand-in for the devicetree functions zephyr_module/Kconfig calls."""
    import os

    (tmp_path / "mcuforge_test_kconfigfunctions.py").write_text(STUB)
    if str(tmp_path) not in sys.path:
        sys.path.insert(0, str(tmp_path))
    chosen = {"zephyr,sram": sram_kb, "zephyr,flash": flash_kb}
    os.environ["MCUFORGE_TEST_CHOSEN"] = ";".join(f"{k}={v}" for k, v in chosen.items() if v is not None)
    os.environ["KCONFIG_FUNCTIONS"] = "mcuforge_test_kconfigfunctions"
    top = tmp_path / f"Kconfig.{arm}.{cpu}"
    cpus = "".join(f"\nconfig {c}\n\tbool\n\tdefault {'y' if arm and c == cpu else 'n'}\n" for c in CPU_SYMBOLS)
    top.write_text(f"""
config ARM
\tbool
\tdefault {"y" if arm else "n"}
{cpus}
source "{MODULE_KCONFIG}"
""")
    try:
        kconf = kconfiglib.Kconfig(str(top), warn_to_stderr=False)
    finally:
        del os.environ["KCONFIG_FUNCTIONS"]
    assert not [w for w in kconf.warnings if "MCUFORGE" in w], kconf.warnings
    return kconf


def enable(kconf, **values):
    assert kconf.syms["MCUFORGE"].set_value("y")
    for name, value in values.items():
        assert kconf.syms[name].set_value(str(value)), name
    return kconf


def test_every_design_symbol_has_a_prompt_and_help(tmp_path):
    kconf = load(tmp_path)
    for name in DESIGN_SYMBOLS:
        sym = kconf.syms.get(name)
        assert sym is not None and sym.nodes, f"{name} missing"
        node = sym.nodes[0]
        assert node.prompt, f"{name} has no prompt"
        assert node.help and len(node.help) > 40, f"{name} has no help text"
    assert kconf.syms["MCUFORGE"].nodes[0].is_menuconfig
    for name in DESIGN_SYMBOLS[1:]:  # everything else lives under `if MCUFORGE`
        assert kconf.syms[name].visibility == 0


def test_defaults_without_board_memory(tmp_path):
    kconf = enable(load(tmp_path))
    s = kconf.syms
    assert s["MCUFORGE_SRAM_BUDGET_KB"].str_value == "256"
    assert s["MCUFORGE_FLASH_BUDGET_KB"].str_value == "0"
    assert s["MCUFORGE_SCHEDULE_LAYER"].str_value == "y"
    assert s["MCUFORGE_TRAINING_NONE"].str_value == "y"
    assert s["MCUFORGE_KERNELS_PORTABLE"].str_value == "y"
    assert s["MCUFORGE_MEMORY_CHECK"].str_value == "y"
    assert s["MCUFORGE_MEMORY_CHECK_FAIL"].str_value == "y"
    assert s["MCUFORGE_PATCH_GRID"].visibility == 0  # layer schedule: no patches


def test_sram_budget_defaults_to_the_boards_sram(tmp_path):
    kconf = enable(load(tmp_path, sram_kb=320, flash_kb=1024))  # e.g. nucleo_f746zg
    assert kconf.syms["MCUFORGE_SRAM_BUDGET_KB"].str_value == "320"
    assert kconf.syms["MCUFORGE_FLASH_BUDGET_KB"].str_value == "1024"
    kconf = enable(load(tmp_path, sram_kb=64))  # qemu_cortex_m3
    assert kconf.syms["MCUFORGE_SRAM_BUDGET_KB"].str_value == "64"


def test_ranges(tmp_path):
    kconf = enable(load(tmp_path))
    sram = kconf.syms["MCUFORGE_SRAM_BUDGET_KB"]
    assert [(lo.str_value, hi.str_value) for lo, hi, _ in [r[:3] for r in sram.ranges]] == [("0", "1048576")]
    sram.set_value("2000000")
    assert sram.str_value == "256"  # out of range: rejected, default kept
    sram.set_value("48")
    assert sram.str_value == "48"
    enable(kconf, MCUFORGE_SCHEDULE_PATCH="y")
    grid = kconf.syms["MCUFORGE_PATCH_GRID"]
    grid.set_value("99")
    assert grid.str_value == "0"
    grid.set_value("4")
    assert grid.str_value == "4"


def test_choices_are_exclusive(tmp_path):
    kconf = enable(load(tmp_path))
    s = kconf.syms
    for choice, options in (("SCHEDULE", ("LAYER", "PATCH", "AUTO")), ("TRAINING", ("NONE", "BIAS", "SPARSE", "FULL")),
                            ("KERNELS", ("PORTABLE", "ARM_DSP"))):
        for opt in options:
            assert s[f"MCUFORGE_{choice}_{opt}"].set_value("y")
            on = [o for o in options if s[f"MCUFORGE_{choice}_{o}"].str_value == "y"]
            assert on == [opt]


def test_dependencies(tmp_path):
    kconf = enable(load(tmp_path))
    s = kconf.syms
    s["MCUFORGE_MEMORY_CHECK"].set_value("n")
    assert s["MCUFORGE_MEMORY_CHECK_FAIL"].str_value == "n" and s["MCUFORGE_MEMORY_CHECK_FAIL"].visibility == 0
    s["MCUFORGE_SCHEDULE_AUTO"].set_value("y")
    assert s["MCUFORGE_PATCH_GRID"].visibility == 2
    kconf = enable(load(tmp_path, arm=False))
    assert kconf.syms["MCUFORGE_KERNELS_ARM_DSP"].visibility == 0  # Arm DSP kernels only on Arm
    # ... and only on cores with the DSP extension
    for cpu, offered in (("CPU_CORTEX_M0", False), ("CPU_CORTEX_M3", False), ("CPU_CORTEX_M4", True),
                         ("CPU_CORTEX_M7", True), ("CPU_CORTEX_M33", True), ("CPU_CORTEX_M55", True)):
        kconf = enable(load(tmp_path, cpu=cpu))
        assert (kconf.syms["MCUFORGE_KERNELS_ARM_DSP"].visibility > 0) == offered, cpu
        assert kconf.syms["MCUFORGE_KERNELS_ARM_DSP"].set_value("y") == offered or not offered
        assert (kconf.syms["MCUFORGE_KERNELS_ARM_DSP"].str_value == "y") == offered, cpu
    kconf = load(tmp_path)  # MCUFORGE off: none of its options
    assert all(kconf.syms[n].str_value in ("n", "") for n in DESIGN_SYMBOLS)


def write_config(kconf, path: Path) -> Path:
    kconf.write_config(str(path))
    return path


def test_dot_config_drives_the_generator_options(tmp_path):
    kconf = enable(load(tmp_path, sram_kb=128), MCUFORGE_SRAM_BUDGET_KB=96, MCUFORGE_FLASH_BUDGET_KB=512,
                   MCUFORGE_SCHEDULE_AUTO="y", MCUFORGE_PATCH_GRID=3)
    cfg = write_config(kconf, tmp_path / ".config")
    opts = from_kconfig(cfg)
    assert opts == {"sram_budget": 96 * 1024, "flash_budget": 512 * 1024, "schedule": "auto", "patch_grid": 3,
                    "training": "none", "kernels": "portable", "stack_target": "cortex-m4"}
    assert BuildConfig(**opts).validate().schedule == "auto"


def mcuforge(*args):
    return subprocess.run([sys.executable, "-m", "mcuforge", *map(str, args)], capture_output=True, text=True)


def test_compile_with_kconfig(tmp_path):
    model = small_onnx(tmp_path / "small.onnx")
    calib = tmp_path / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((8, 3, 12, 12)).astype(np.float32))
    kconf = enable(load(tmp_path), MCUFORGE_SRAM_BUDGET_KB=64, MCUFORGE_FLASH_BUDGET_KB=128)
    cfg = write_config(kconf, tmp_path / "ok.config")
    res = mcuforge("compile", model, "-o", tmp_path / "ok", "--calibration", calib, "--kconfig", cfg)
    assert res.returncode == 0, res.stderr
    plan = Plan.load(tmp_path / "ok")
    assert plan.config.sram_budget == 64 * 1024 and plan.config.flash_budget == 128 * 1024
    assert plan.config.schedule == "layer" and plan.config.kernels == "portable"

    kconf.syms["MCUFORGE_SRAM_BUDGET_KB"].set_value("1")  # the arena of this model is larger than 1 KiB
    cfg = write_config(kconf, tmp_path / "small.config")
    res = mcuforge("compile", model, "-o", tmp_path / "small", "--calibration", calib, "--kconfig", cfg)
    assert res.returncode == 3, res.stderr
    assert "CONFIG_MCUFORGE_SRAM_BUDGET_KB" in res.stderr and "1024" in res.stderr
    assert not (tmp_path / "small").exists()
