"""check-elf on a real linked Cortex-M image agrees with arm-none-eabi-size
and nm; a too-small budget fails (exit 3) with the numbers, the largest
symbols and the option to change; --json, --report and --warn-only."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mcuforge.tools import qemu
from mcuforge.config import BuildConfig
from mcuforge.tools.elfcheck import read_elf, summarize
from mcuforge.pipeline import compile_model
from test_cli import small_onnx

SIZE, NM = shutil.which("arm-none-eabi-size"), shutil.which("arm-none-eabi-nm")
pytestmark = pytest.mark.skipif(SIZE is None or shutil.which("arm-none-eabi-gcc") is None,
                                reason="arm-none-eabi-gcc/binutils not installed (apt-get install gcc-arm-none-eabi "
                                       "libnewlib-arm-none-eabi)")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("elf")
    model = small_onnx(tmp / "small.onnx")
    calib = tmp / "calib.npy"
    np.save(calib, np.random.default_rng(1).standard_normal((8, 3, 12, 12)).astype(np.float32))
    plan = compile_model(model, BuildConfig(name="net", calibration=str(calib)), tmp / "gen")
    elf = qemu.build(plan, tmp / "gen", tmp / "build", "qemu-cortex-m4", opt="-Os")
    return plan, elf


def check_elf(*args):
    return subprocess.run([sys.executable, "-m", "mcuforge", "check-elf", *map(str, args)], capture_output=True,
                          text=True)


def test_totals_agree_with_size(image):
    _plan, elf = image
    line = subprocess.run([SIZE, "-B", str(elf)], capture_output=True, text=True, check=True).stdout.splitlines()[1]
    text, data, bss = (int(v) for v in line.split()[:3])
    mem = read_elf(elf)
    assert mem.flash == text + data
    assert mem.ram == data + bss
    assert mem.machine == "EM_ARM"


def nm_symbols(elf: Path) -> dict[str, tuple[str, int]]:
    out = subprocess.run([NM, "-S", str(elf)], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4:
            syms[parts[3]] = (parts[2], int(parts[1], 16))
    return syms


def test_model_symbols_agree_with_nm(image):
    plan, elf = image
    nm = nm_symbols(elf)
    m = summarize(read_elf(elf), "net")["model"]
    assert m["arena_bytes"] == plan.arena_size == nm["net_arena"][1]
    assert nm["net_arena"][0] in "bB"
    ours = {s["name"]: s for s in m["symbols"]}
    for name, (typ, size) in nm.items():
        if name.startswith("net_") or name.startswith("mcf_"):
            assert name in ours and ours[name]["size"] == size, name
    # Constants sit in .text here (one flash region), so nm types say little: compare totals.
    own_flash = sum(size for name, (typ, size) in nm.items() if name.startswith("net_") and typ in "tTrR")
    runtime = sum(size for name, (typ, size) in nm.items() if name.startswith("mcf_") and typ in "tTrR")
    assert m["weights_bytes"] > 0 and m["model_code_bytes"] > 0
    assert m["weights_bytes"] + m["model_code_bytes"] == own_flash
    assert m["runtime_code_bytes"] + m["runtime_const_bytes"] >= runtime > 0  # plus local helpers of mcf_*.c
    assert m["ram_bytes"] == plan.arena_size
    assert m["flash_bytes"] >= plan.weight_bytes


def test_fits_json_and_report(image, tmp_path):
    plan, elf = image
    report = tmp_path / "sub" / "memory.json"
    res = check_elf(elf, "--model", "net", "--sram-budget", "64K", "--flash-budget", "1M", "--json",
                    "--report", report)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out == json.loads(report.read_text())
    assert out["fits"] and out["sram_budget"] == 65536 and out["model"]["arena_bytes"] == plan.arena_size
    assert set(out["ram_by_section"]) >= {".bss"} and ".text" in out["flash_by_section"]


def test_too_small_budget_fails_with_the_message(image, tmp_path):
    plan, elf = image
    res = check_elf(elf, "--model", "net", "--sram-budget", "1K")
    assert res.returncode == 3, res.stderr
    err = [l for l in res.stderr.splitlines() if l.startswith("mcuforge: error:")]
    assert len(err) == 1 and "Traceback" not in res.stderr
    msg = err[0]
    for needle in (f"needs {plan.arena_size} bytes of SRAM", "budget is 1024", "net_arena",
                   "CONFIG_MCUFORGE_SRAM_BUDGET_KB", "SRAM_BUDGET", "--sram-budget"):
        assert needle in msg, (needle, msg)
    res = check_elf(elf, "--model", "net", "--flash-budget", "100")
    assert res.returncode == 3 and "CONFIG_MCUFORGE_FLASH_BUDGET_KB" in res.stderr and "of flash" in res.stderr
    report = tmp_path / "warn.json"
    res = check_elf(elf, "--model", "net", "--sram-budget", "1K", "--warn-only", "--report", report)
    assert res.returncode == 0 and "WARNING" in res.stderr
    assert json.loads(report.read_text())["fits"] is False


def test_whole_image_budget_and_bad_input(image, tmp_path):
    _plan, elf = image
    mem = read_elf(elf)
    assert check_elf(elf, "--sram-budget", str(mem.ram)).returncode == 0
    res = check_elf(elf, "--sram-budget", str(mem.ram - 1))
    assert res.returncode == 3 and "the image needs" in res.stderr
    junk = tmp_path / "junk.elf"
    junk.write_bytes(b"not an elf at all")
    res = check_elf(junk)
    assert res.returncode == 2 and "junk.elf" in res.stderr
    res = check_elf(elf, "--model", "nosuch")
    assert res.returncode == 2 and "nosuch_arena" in res.stderr
