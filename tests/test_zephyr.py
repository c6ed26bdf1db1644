"""The Zephyr side: samples, ztest suites, west.

Always (no Zephyr tree needed):
* the outputs and checksums the samples' console harnesses expect
  (sample.yaml) are what the host computes with the NumPy reference;
* every Kconfig symbol a testcase.yaml / sample.yaml / prj.conf sets exists
  in zephyr_module/Kconfig, the scenarios cover the platforms of the issue;
* west.yml is a valid west manifest with the allow-list, and
  `west mcuforge` forwards to the command line.

Where a Zephyr tree is given (ZEPHYR_BASE), also: `west build` of both
samples for a POSIX board and qemu_cortex_m3, run, output checked; Twister
on tests/zephyr and samples; a too-small CONFIG_MCUFORGE_SRAM_BUDGET_KB
fails the build in the post-link step with the message.
"""
from __future__ import annotations

import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcuforge import reference
from mcuforge.config import BuildConfig
from mcuforge.pipeline import compile_model

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ZTESTS = ROOT / "tests" / "zephyr"
ZEPHYR_BASE = os.environ.get("ZEPHYR_BASE")

# What each sample's C writes into the input (src/main.c), as (a, b, m, o):
# input[i] = (i * a + b) % m - o.
SAMPLE_MODELS = {
    "hello_inference": dict(script="hello", name="hello", input=(37, 11, 256, 128)),
    "keyword_spotting": dict(script="kws", name="kws", input=(29, 7, 200, 100)),
}


def fnv1a(data: np.ndarray) -> int:
    h = 2166136261
    for b in data.astype(np.uint8).reshape(-1):
        h = ((h ^ int(b)) * 16777619) & 0xFFFFFFFF
    return h


def host_outputs(sample: str, tmp: Path, **options) -> tuple[np.ndarray, object]:
    spec = SAMPLE_MODELS[sample]
    subprocess.run([sys.executable, str(SAMPLES / sample / "model" / "make_model.py"), str(tmp / "model")],
                   check=True)
    model = tmp / "model" / f"{spec['script']}.onnx"
    calib = tmp / "model" / f"{spec['script']}_calibration.npy"
    plan = compile_model(model, BuildConfig(name=spec["name"], calibration=str(calib), **options), tmp / "gen")
    a, b, m, o = spec["input"]
    t = plan.graph.tensors[plan.input]
    x = ((np.arange(t.size) * a + b) % m - o).astype(np.int8).reshape(t.shape[1:])
    return reference.run(plan, x).outputs[plan.outputs[0]].reshape(-1), plan


def expected_lines(sample: str) -> list[str]:
    meta = yaml.safe_load((SAMPLES / sample / "sample.yaml").read_text())
    return meta["common"]["harness_config"]["regex"]


@pytest.mark.parametrize("sample", sorted(SAMPLE_MODELS))
def test_sample_harness_expects_the_host_reference(sample, tmp_path):
    y, plan = host_outputs(sample, tmp_path)
    regex = expected_lines(sample)
    label = "outputs" if sample == "hello_inference" else "scores"
    want = f"{sample}: {label} " + " ".join(str(int(v)) for v in y)
    assert any(re.fullmatch(r, want) for r in regex), (want, regex)
    assert any(re.fullmatch(r, f"{sample}: checksum 0x{fnv1a(y):08x}") for r in regex), (hex(fnv1a(y)), regex)
    top = int(np.argmax(y))
    assert any(re.match(r, f"{sample}: top class {top}") or re.match(r.split(" \\(")[0], f"{sample}: top class {top}")
               for r in regex if "top class" in r)
    for r in regex:
        if "arena" in r:
            assert str(plan.arena_size) in r


def test_keyword_spotting_schedules_give_the_same_bytes(tmp_path):
    layer, _ = host_outputs("keyword_spotting", tmp_path / "layer", schedule="layer")
    patch, plan = host_outputs("keyword_spotting", tmp_path / "patch", schedule="patch", patch_grid=2)
    auto, _ = host_outputs("keyword_spotting", tmp_path / "auto", schedule="auto", sram_budget=32 * 1024)
    assert np.array_equal(layer, patch) and np.array_equal(layer, auto)


def kconfig_symbols() -> set[str]:
    text = (ROOT / "zephyr_module" / "Kconfig").read_text()
    return set(re.findall(r"^(?:menu)?config (\w+)", text, re.M))


def yaml_files() -> list[Path]:
    return sorted(ZTESTS.rglob("testcase.yaml")) + sorted(SAMPLES.rglob("sample.yaml"))


def test_scenarios_use_real_symbols_and_cover_the_platforms():
    symbols = kconfig_symbols()
    confs = sorted(ZTESTS.rglob("*.conf")) + sorted(SAMPLES.rglob("prj.conf"))
    for conf in confs:
        for sym in re.findall(r"^CONFIG_(MCUFORGE\w*)=", conf.read_text(), re.M):
            assert sym in symbols, f"{conf}: CONFIG_{sym} is not in zephyr_module/Kconfig"
    scenarios = 0
    for path in yaml_files():
        meta = yaml.safe_load(path.read_text())
        common = meta.get("common", {})
        for name, sc in meta["tests"].items():
            scenarios += 1
            sc = {**common, **(sc or {})}
            for line in sc.get("extra_configs", []):
                sym = re.match(r"CONFIG_(\w+)=", line).group(1)
                assert not sym.startswith("MCUFORGE") or sym in symbols, f"{path}: {name}: {line}"
            assert sc.get("platform_allow"), f"{path}: {name} has no platform_allow"
    inference = yaml.safe_load((ZTESTS / "inference" / "testcase.yaml").read_text())
    platforms = inference["common"]["platform_allow"].split()
    for p in ("native_sim", "native_posix", "native_posix_64", "qemu_cortex_m3", "mps2_an385"):
        assert p in platforms
    assert inference["common"]["integration_platforms"]
    configs = " ".join(" ".join(sc.get("extra_configs", [])) for sc in inference["tests"].values() if sc)
    for needle in ("SRAM_BUDGET_KB", "KERNELS_", "SCHEDULE_PATCH", "SCHEDULE_AUTO", "MEMORY_CHECK_FAIL=n"):
        assert needle in configs
    boards = yaml.safe_load((SAMPLES / "keyword_spotting" / "sample.yaml").read_text())["tests"]
    real = boards["sample.mcuforge.keyword_spotting.boards"]
    assert real["build_only"] is True
    for b in ("nucleo_f746zg", "nrf52840dk_nrf52840", "disco_l475_iot1"):
        assert b in real["platform_allow"].split()
    assert scenarios >= 10


def test_ztest_expected_header(tmp_path):
    subprocess.run([sys.executable, str(ZTESTS / "inference" / "model" / "make_model.py"), str(tmp_path)], check=True)
    cfg = BuildConfig(name="testnet", calibration=str(tmp_path / "testnet_calibration.npy"))
    plan = compile_model(tmp_path / "testnet.onnx", cfg, tmp_path / "gen")
    header = tmp_path / "testnet_expected.h"
    subprocess.run([sys.executable, str(ZTESTS / "inference" / "expected.py"), str(tmp_path / "gen"), str(header), "2"],
                   check=True)
    text = header.read_text()
    assert "#define TESTNET_TEST_INPUTS 2" in text
    assert f"testnet_test_expected[2][{plan.graph.tensors[plan.outputs[0]].size}]" in text
    # The schedules of the scenarios really differ in arena.
    patch = compile_model(tmp_path / "testnet.onnx", cfg.merged(schedule="patch", patch_grid=2), tmp_path / "p")
    auto = compile_model(tmp_path / "testnet.onnx", cfg.merged(schedule="auto", sram_budget=8 * 1024), tmp_path / "a")
    assert patch.arena_size < plan.arena_size <= 12 * 1024 and auto.arena_size <= 8 * 1024


def test_west_manifest_and_extension(tmp_path):
    west_manifest = pytest.importorskip("west.manifest")
    manifest = west_manifest.Manifest.from_data(yaml.safe_load((ROOT / "west.yml").read_text()),
                                                import_flags=west_manifest.ImportFlag.IGNORE)
    zephyr = manifest.get_projects(["zephyr"])[0]
    assert re.fullmatch(r"v\d+\.\d+\.\d+", zephyr.revision)
    data = yaml.safe_load((ROOT / "west.yml").read_text())["manifest"]
    allow = data["projects"][0]["import"]["name-allowlist"]
    assert sorted(allow) == ["cmsis", "hal_nordic", "hal_stm32"]
    cmds = yaml.safe_load((ROOT / "west-commands.yml").read_text())["west-commands"][0]
    assert (ROOT / cmds["file"]).is_file() and cmds["commands"][0]["name"] == "mcuforge"
    assert data["self"]["west-commands"] == "west-commands.yml"


def test_west_command_forwards_to_the_cli(tmp_path):
    pytest.importorskip("west.commands")
    import argparse

    from mcuforge.west_command import Mcuforge, translate
    from test_cli import small_onnx

    cmd = Mcuforge()
    parser = argparse.ArgumentParser(prog="west")
    sub = parser.add_subparsers(dest="command")
    cmd.do_add_parser(sub)
    model = small_onnx(tmp_path / "small.onnx")
    args, unknown = parser.parse_known_args(["mcuforge", "compile", str(model), "-o", str(tmp_path / "gen"),
                                             "--name", "net"])
    cmd.do_run(args, unknown)
    assert (tmp_path / "gen" / "net.c").is_file()
    obj = tmp_path / "net.o"
    subprocess.run(["cc", "-c", "-std=c99", f"-I{tmp_path / 'gen'}", f"-I{tmp_path / 'gen' / 'mcuforge_runtime' / 'include'}",
                    str(tmp_path / "gen" / "net.c"), "-o", str(obj)], check=True)
    args, unknown = parser.parse_known_args(["mcuforge", "check-elf", str(obj), "--model", "net", "--sram-budget", "1"])
    with pytest.raises(SystemExit) as exc:
        cmd.do_run(args, unknown)
    assert exc.value.code == 3
    build = tmp_path / "build"
    (build / "zephyr").mkdir(parents=True)
    (build / "zephyr" / ".config").write_text("CONFIG_MCUFORGE=y\nCONFIG_MCUFORGE_SRAM_BUDGET_KB=48\n"
                                               "CONFIG_MCUFORGE_FLASH_BUDGET_KB=0\n")
    assert translate(["check-elf", "-d", str(build), "--model", "net"]) == [
        "check-elf", str(build / "zephyr" / "zephyr.elf"), "--model", "net", "--sram-budget", "48K"]


# --------------------------------------------------------------- with Zephyr

needs_zephyr = pytest.mark.skipif(
    not ZEPHYR_BASE, reason="ZEPHYR_BASE is not set: no Zephyr tree to build the samples and ztest suites with "
                            "(set ZEPHYR_BASE to a Zephyr 3.2+ tree with cmsis, hal_stm32 and hal_nordic next to it)")


def zephyr_version() -> tuple[int, int]:
    text = (Path(ZEPHYR_BASE) / "VERSION").read_text()
    major = int(re.search(r"VERSION_MAJOR\s*=\s*(\d+)", text).group(1))
    minor = int(re.search(r"VERSION_MINOR\s*=\s*(\d+)", text).group(1))
    return major, minor


def posix_board() -> str:
    return "native_sim" if zephyr_version() >= (4, 0) else "native_posix"


def zephyr_env(board: str) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    if board.startswith("native"):
        env["ZEPHYR_TOOLCHAIN_VARIANT"] = env.get("ZEPHYR_TOOLCHAIN_VARIANT_HOST", "host")
    elif "ZEPHYR_TOOLCHAIN_VARIANT" not in env or env["ZEPHYR_TOOLCHAIN_VARIANT"] == "host":
        if not Path(env.get("ZEPHYR_SDK_INSTALL_DIR", "/nonexistent")).is_dir() and shutil.which("arm-none-eabi-gcc"):
            env["ZEPHYR_TOOLCHAIN_VARIANT"] = "gnuarmemb"
            env.setdefault("GNUARMEMB_TOOLCHAIN_PATH", str(Path(shutil.which("arm-none-eabi-gcc")).parent.parent))
    return env


def west_build(app: Path, board: str, build: Path, *cmake_args: str) -> subprocess.CompletedProcess:
    west = shutil.which("west") or str(Path(sys.executable).parent / "west")
    cmd = [west, "build", "-p", "always", "-b", board, "-d", str(build), str(app), "--",
           f"-DZEPHYR_EXTRA_MODULES={ROOT}", *cmake_args]
    return subprocess.run(cmd, capture_output=True, text=True, env=zephyr_env(board), cwd=ZEPHYR_BASE, timeout=900)


def run_until(cmd: list[str], done: str, env: dict, cwd: Path, timeout: float = 120) -> str:
    """Run a never-ending target (QEMU, native_posix) until `done` is printed."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            start_new_session=True, text=True)
    out, end = "", time.monotonic() + timeout
    try:
        while time.monotonic() < end and done not in out:
            ready, _, _ = select.select([proc.stdout], [], [], 1.0)
            if ready:
                line = proc.stdout.readline()
                if not line:
                    break
                out += line
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    return out


@needs_zephyr
@pytest.mark.parametrize("sample", sorted(SAMPLE_MODELS))
@pytest.mark.parametrize("where", ["posix", "qemu_cortex_m3"])
def test_west_build_and_run_sample(sample, where, tmp_path):
    board = posix_board() if where == "posix" else where
    build = tmp_path / "build"
    res = west_build(SAMPLES / sample, board, build)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "mcuforge: generating" in res.stdout and "checking" in res.stdout
    assert (build / "mcuforge" / f"{SAMPLE_MODELS[sample]['name']}_memory.json").is_file()
    env = zephyr_env(board)
    if where == "posix":
        out = run_until([str(build / "zephyr" / "zephyr.exe"), "-stop_at=5"], f"{sample}: done", env, tmp_path)
    else:
        out = run_until([shutil.which("ninja") or "ninja", "-C", str(build), "run"], f"{sample}: done", env, tmp_path)
    for regex in expected_lines(sample):
        assert re.search(regex, out), (regex, out)


@needs_zephyr
def test_too_small_sram_budget_fails_after_linking(tmp_path):
    res = west_build(SAMPLES / "keyword_spotting", "qemu_cortex_m3", tmp_path / "build",
                     "-DCONFIG_MCUFORGE_SRAM_BUDGET_KB=8", "-DCONFIG_MCUFORGE_SCHEDULE_LAYER=y")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "mcuforge: checking kws in the linked ELF" in out  # the post-link step ran ...
    assert "zephyr.elf: over budget: model kws needs 16000 bytes of SRAM, the budget is 8192" in out  # ... and failed
    assert "CONFIG_MCUFORGE_SRAM_BUDGET_KB to at least 16" in out


@needs_zephyr
def test_twister(tmp_path):
    twister = Path(ZEPHYR_BASE) / "scripts" / "twister"
    board = posix_board()
    cmd = [sys.executable, str(twister), "-T", str(ZTESTS), "-T", str(SAMPLES), "-p", board, "-p", "qemu_cortex_m3",
           f"-x=ZEPHYR_EXTRA_MODULES={ROOT}", "--outdir", str(tmp_path / "twister-out"), "-j", "2", "--inline-logs"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=zephyr_env("qemu_cortex_m3"), cwd=tmp_path,
                         timeout=3600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-6000:]
    # e.g. "22 of 24 test configurations passed (100.00%), 0 failed, 2 skipped" (skipped: the build-only boards)
    summary = re.search(r"(\d+) of (\d+) test configurations passed \(100\.00%\), 0 failed", out)
    assert summary and int(summary.group(1)) >= 16, out[-3000:]


@needs_zephyr
def test_explicit_argument_overrides_kconfig_and_says_so(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(SAMPLES / "hello_inference", app)
    cmake = (app / "CMakeLists.txt").read_text().replace("NAME hello", "NAME hello SRAM_BUDGET 48K SCHEDULE auto")
    (app / "CMakeLists.txt").write_text(cmake)
    west = shutil.which("west") or str(Path(sys.executable).parent / "west")
    res = subprocess.run([west, "build", "--cmake-only", "-b", "qemu_cortex_m3", "-d", str(tmp_path / "build"),
                          str(app), "--", f"-DZEPHYR_EXTRA_MODULES={ROOT}"], capture_output=True, text=True,
                         env=zephyr_env("qemu_cortex_m3"), cwd=ZEPHYR_BASE, timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "mcuforge: hello: SRAM_BUDGET 48K (argument of mcuforge_add_model) overrides " \
           "CONFIG_MCUFORGE_SRAM_BUDGET_KB (64K)" in out  # qemu_cortex_m3: 64 KiB of SRAM
    assert "SCHEDULE auto (argument of mcuforge_add_model) overrides CONFIG_MCUFORGE_SCHEDULE (layer)" in out
    ninja_file = (tmp_path / "build" / "build.ninja").read_text()
    assert "--sram-budget 48K" in ninja_file and "--schedule auto" in ninja_file
