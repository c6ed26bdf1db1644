"""The Zephyr side: samples, ztest suites, west.

Always (no Zephyr tree needed):
* the outputs and checksums the samples' console harnesses expect
  (sample.yaml) are what the host computes with the NumPy reference, for
  on_device_learning with the reference of the training step;
* every Kconfig symbol a testcase.yaml / sample.yaml / prj.conf sets exists
  in zephyr_module/Kconfig, the scenarios cover the platforms of the issue,
  and no yaml names a board (Twister 3.x and 4.x disagree on names);
* west.yml is a valid west manifest with the allow-list, and
  `west mcuforge` forwards to the command line;
* run_until sees every line of a target's output.

Where a Zephyr tree (ZEPHYR_BASE, 3.2 or later) and a Python with Zephyr's
requirements are installed, also: `west build` of both samples for a POSIX
board and qemu_cortex_m3, run, output checked; Twister on tests/zephyr and
samples; a model larger than qemu_cortex_m0's SRAM stopped by the generator
with our message; an over-budget build that only warns; an explicit
mcuforge_add_model argument overriding Kconfig.
"""
from __future__ import annotations

import functools
import importlib.util
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcuforge import reference
from mcuforge.config import BuildConfig, from_kconfig
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


def load_script(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def on_device_learning_reference(tmp: Path, more_epochs: int = 0) -> list[str]:
    """The console lines of samples/on_device_learning as the host's NumPy reference of the
    training step computes them, with the options of its prj.conf; then, for each of
    `more_epochs`, what a boot that restored the previous state prints after its one more epoch
    ("epoch N accuracy", "train state checksum")."""
    training = pytest.importorskip("mcuforge.reference.training", reason="no training engine in this tree")
    app = SAMPLES / "on_device_learning"
    subprocess.run([sys.executable, str(app / "model" / "make_model.py"), str(tmp / "model")], check=True)
    options = from_kconfig(app / "prj.conf")
    assert options["training"] == "bias" and options["train_bias_layers"] == 2
    plan = compile_model(tmp / "model" / "odl.onnx",
                         BuildConfig(name="odl", calibration=str(tmp / "model" / "odl_calibration.npy"), **options),
                         tmp / "gen")
    make_data = load_script(app / "model" / "make_data.py")
    data = make_data.quantized(plan, tmp / "model" / "odl_data.npz")
    state = training.TrainState.initial(plan)
    n = len(data["y_test"])

    def accuracy() -> int:
        return sum(int(np.argmax(training.infer(plan, state, x)) == y) for x, y in zip(data["x_test"], data["y_test"]))

    def epoch() -> None:
        for x, y in zip(data["x_train"], data["y_train"]):
            training.train_step(plan, state, x, int(y))

    def checksum() -> str:
        return f"train state checksum 0x{fnv1a(np.frombuffer(state.to_bytes(plan), np.uint8)):08x}"

    lines = [f"accuracy before {accuracy()}/{n}"]
    for e in range(1, make_data.EPOCHS + 1):
        epoch()
        lines.append(f"epoch {e} accuracy {accuracy()}/{n}")
    lines.append(f"accuracy after {accuracy()}/{n}")
    lines.append(checksum())
    lines.append("done")
    for e in range(make_data.EPOCHS + 1, make_data.EPOCHS + 1 + more_epochs):
        epoch()
        lines += [f"epoch {e} accuracy {accuracy()}/{n}", checksum()]
    return [f"on_device_learning: {line}" for line in lines]


def test_on_device_learning_harness_expects_the_host_reference(tmp_path):
    want = on_device_learning_reference(tmp_path)
    assert expected_lines("on_device_learning") == want
    before, after = (int(re.search(r"(\d+)/", want[i]).group(1)) for i in (0, -3))
    assert before <= 24 and after >= 36  # it really learns: about half right before, 90% after


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
            # Twister 4.x exits on a board name it does not know (native_posix) and wants YAML
            # lists; 3.x wants strings and has no native_sim: boards are chosen by Kconfig.
            for key in ("platform_allow", "platform_exclude", "integration_platforms", "platform_key"):
                assert key not in sc, f"{path}: {name}: {key} names boards; select them in filter: by Kconfig"
            for key in ("arch_allow", "arch_exclude"):
                assert len(str(sc.get(key, "")).split()) <= 1, f"{path}: {name}: {key}: one arch (3.x: a string)"
            assert re.search(r"CONFIG_BOARD_\w+", sc.get("filter", "")), f"{path}: {name}: no board filter"
    inference = yaml.safe_load((ZTESTS / "inference" / "testcase.yaml").read_text())
    boards = set(re.findall(r"CONFIG_BOARD_(\w+)", inference["common"]["filter"]))
    # native_posix_64 too (3.x); the Cortex-M33 of mps2_an521 (built +nodsp) and the Cortex-M55 of
    # mps3_an547 (4.x: mps3/corstone300/an547), the latter for the arm-dsp scenario only
    assert boards == {"NATIVE_SIM", "NATIVE_POSIX", "QEMU_CORTEX_M3", "MPS2_AN385", "MPS2_AN521_CPU0",
                      "MPS3_CORSTONE300_AN547", "MPS3_AN547"}
    assert "(CONFIG_MCUFORGE_KERNELS_ARM_DSP and (CONFIG_BOARD_MPS3_CORSTONE300_AN547 or CONFIG_BOARD_MPS3_AN547))" \
        in inference["common"]["filter"]
    # Twister ANDs a scenario's filter with the common one: arm-dsp runs on the DSP cores only
    assert inference["tests"]["mcuforge.inference.kernels_arm_dsp"]["filter"] == (
        "CONFIG_BOARD_MPS2_AN521_CPU0 or CONFIG_BOARD_MPS3_CORSTONE300_AN547 or CONFIG_BOARD_MPS3_AN547")
    configs = " ".join(" ".join(sc.get("extra_configs", [])) for sc in inference["tests"].values() if sc)
    for needle in ("SRAM_BUDGET_KB", "KERNELS_", "SCHEDULE_PATCH", "SCHEDULE_AUTO", "MEMORY_CHECK_FAIL=n"):
        assert needle in configs
    tests = yaml.safe_load((SAMPLES / "keyword_spotting" / "sample.yaml").read_text())["tests"]
    real = tests["sample.mcuforge.keyword_spotting.boards"]
    assert real["build_only"] is True and real["arch_allow"] == "arm"
    assert set(re.findall(r"CONFIG_BOARD_(\w+)", real["filter"])) == {
        "NUCLEO_F746ZG", "NRF52840DK_NRF52840", "DISCO_L475_IOT1"}
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
    assert sorted(allow) == ["cmsis_6", "hal_nordic", "hal_stm32"]  # Zephyr 4.x: CMSIS 6
    cmds = yaml.safe_load((ROOT / "west-commands.yml").read_text())["west-commands"][0]
    assert (ROOT / cmds["file"]).is_file() and cmds["commands"][0]["name"] == "mcuforge"
    assert data["self"]["west-commands"] == "west-commands.yml"


def test_west_command_forwards_to_the_cli(tmp_path):
    pytest.importorskip("west.commands")
    import argparse

    from mcuforge.tools.west_command import Mcuforge, translate
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
#
# The one place where the Python tests handle Zephyr releases (the CMake side
# is tests/zephyr/zephyr_compat.cmake): board names, and which Python runs
# Zephyr's own tools (west, Twister).

# Board names by release: (Zephyr 3.x, Zephyr 4.x). 4.x qualifies some.
BOARDS = {
    "posix": ("native_posix", "native_sim"),
    "qemu_cortex_m3": ("qemu_cortex_m3", "qemu_cortex_m3"),
    "qemu_cortex_m0": ("qemu_cortex_m0", "qemu_cortex_m0"),
    "mps2_an385": ("mps2_an385", "mps2/an385"),
    "mps2_an521": ("mps2_an521", "mps2/an521/cpu0"),  # Cortex-M33, built without DSP (+nodsp)
    "dsp": ("mps3_an547", "mps3/corstone300/an547"),  # Cortex-M55 with DSP, run by qemu-system-arm
}


def zephyr_version() -> tuple[int, int]:
    text = (Path(ZEPHYR_BASE) / "VERSION").read_text()
    major = int(re.search(r"VERSION_MAJOR\s*=\s*(\d+)", text).group(1))
    minor = int(re.search(r"VERSION_MINOR\s*=\s*(\d+)", text).group(1))
    return major, minor


def board(key: str) -> str:
    return BOARDS[key][zephyr_version() >= (4, 0)]


def script_interpreter(script: str | None) -> str | None:
    """The interpreter named by a console script's #! line (west's, for example)."""
    try:
        first = Path(script).read_bytes()[:512].split(b"\n")[0].decode()
    except (OSError, TypeError, UnicodeDecodeError):
        return None
    return first[2:].strip().split()[0] if first.startswith("#!") and first[2:].strip() else None


@functools.lru_cache(maxsize=None)
def zephyr_python() -> tuple[str | None, str]:
    """(interpreter, why not) of the user's Zephyr environment: a Python with Zephyr's own
    requirements (scripts/requirements-*.txt) and west, which is what runs west and Twister.

    Tried in order: $ZEPHYR_PYTHON, the Python of `west` on PATH, the active virtualenv's,
    this one (the project's .venv has west but not, for instance, Twister's psutil)."""
    candidates = [os.environ.get("ZEPHYR_PYTHON"), script_interpreter(shutil.which("west"))]
    if os.environ.get("VIRTUAL_ENV"):
        candidates.append(str(Path(os.environ["VIRTUAL_ENV"]) / "bin" / "python"))
    candidates.append(sys.executable)
    twister = Path(ZEPHYR_BASE) / "scripts" / "twister"
    why = []
    for python in dict.fromkeys(c for c in candidates if c):
        if not shutil.which(python):
            why.append(f"{python}: not found")
            continue
        probe = subprocess.run([python, "-c", "import west", ], capture_output=True, text=True)
        if probe.returncode == 0:
            probe = subprocess.run([python, str(twister), "--help"], capture_output=True, text=True, timeout=300)
        if probe.returncode == 0:
            return python, ""
        missing = re.findall(r"No module named '([^']+)'", probe.stderr)
        why.append(f"{python}: " + (f"no module {missing[-1]!r}" if missing else probe.stderr.strip()[-300:]))
    return None, ("no Python with Zephyr's requirements and west to run west and Twister ("
                  + "; ".join(why) + "): install them into the Zephyr environment (pip install west -r "
                  "$ZEPHYR_BASE/scripts/requirements-base.txt -r …-build-test.txt -r …-run-test.txt) and "
                  "name its interpreter with ZEPHYR_PYTHON=…/bin/python if it is not the one running `west`")


def needs_zephyr(test):
    """Zephyr tests: run where a Zephyr tree (ZEPHYR_BASE) and its Python requirements are installed."""
    @functools.wraps(test)
    def wrapper(*args, **kwargs):
        if not ZEPHYR_BASE:
            pytest.skip("ZEPHYR_BASE is not set: no Zephyr tree to build the samples and ztest suites with "
                        "(set ZEPHYR_BASE to the zephyr/ directory of a west workspace, Zephyr 3.2 or later, "
                        "with the modules of west.yml)")
        if not zephyr_python()[0]:
            pytest.skip(zephyr_python()[1])
        return test(*args, **kwargs)
    return wrapper


def zephyr_env(board_name: str) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(zephyr_python()[0]).parent}{os.pathsep}{env['PATH']}"
    if board_name.startswith("native"):
        env["ZEPHYR_TOOLCHAIN_VARIANT"] = env.get("ZEPHYR_TOOLCHAIN_VARIANT_HOST", "host")
    elif "ZEPHYR_TOOLCHAIN_VARIANT" not in env or env["ZEPHYR_TOOLCHAIN_VARIANT"] == "host":
        if not Path(env.get("ZEPHYR_SDK_INSTALL_DIR", "/nonexistent")).is_dir() and shutil.which("arm-none-eabi-gcc"):
            env["ZEPHYR_TOOLCHAIN_VARIANT"] = "gnuarmemb"
            env.setdefault("GNUARMEMB_TOOLCHAIN_PATH", str(Path(shutil.which("arm-none-eabi-gcc")).parent.parent))
    return env


def west(*args: str) -> list[str]:
    """West from the Zephyr environment; the generator runs with this test's Python."""
    return [zephyr_python()[0], "-m", "west", *args]


def west_build(app: Path, board_name: str, build: Path, *cmake_args: str,
               cmake_only: bool = False) -> subprocess.CompletedProcess:
    cmd = west("build", "-p", "always", *(["--cmake-only"] if cmake_only else []), "-b", board_name,
               "-d", str(build), str(app), "--", f"-DZEPHYR_EXTRA_MODULES={ROOT}",
               f"-DMCUFORGE_PYTHON={sys.executable}", *cmake_args)
    return subprocess.run(cmd, capture_output=True, text=True, env=zephyr_env(board_name), cwd=ZEPHYR_BASE,
                          timeout=900)


def run_until(cmd: list[str], done: str, env: dict, cwd: Path, timeout: float = 120) -> str:
    """Run a never-ending target (QEMU, native_sim) until the line with `done` is printed
    whole (up to its line end: "PROJECT EXECUTION" is followed by the verdict).

    Reads the pipe's file descriptor directly (os.read), so that select() and the reads
    agree on what has arrived: nothing waits unseen in a file object's buffer."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                            start_new_session=True)
    fd, data, end = proc.stdout.fileno(), b"", time.monotonic() + timeout
    wanted = done.encode()

    def line_done() -> bool:
        at = data.find(wanted)
        return at >= 0 and data.find(b"\n", at) >= 0

    try:
        while time.monotonic() < end and not line_done():
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    break
                data += chunk
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()
    return data.decode(errors="replace")


def test_run_until_sees_lines_already_read_ahead(tmp_path):
    # Everything arrives in one write and the program then waits: a reader that takes one
    # line from a buffered file object and then select()s again never sees the last line.
    script = ("import sys, time\n"
              "sys.stdout.write(''.join(f'line {i}\\n' for i in range(200)) + 'sample: done\\n')\n"
              "sys.stdout.flush()\ntime.sleep(60)\n")
    start = time.monotonic()
    out = run_until([sys.executable, "-c", script], "sample: done", dict(os.environ), tmp_path, timeout=20)
    assert out.splitlines()[:2] == ["line 0", "line 1"] and "line 199\nsample: done" in out
    assert time.monotonic() - start < 15


def test_run_until_waits_for_the_rest_of_the_line(tmp_path):
    # ztest's verdict comes after "PROJECT EXECUTION" on the same line, possibly in a later write.
    script = ("import sys, time\nsys.stdout.write('PROJECT EXECUTION '); sys.stdout.flush()\n"
              "time.sleep(1)\nsys.stdout.write('SUCCESSFUL\\r\\n'); sys.stdout.flush()\ntime.sleep(60)\n")
    out = run_until([sys.executable, "-c", script], "PROJECT EXECUTION", dict(os.environ), tmp_path, timeout=20)
    assert "PROJECT EXECUTION SUCCESSFUL" in out


@needs_zephyr
@pytest.mark.parametrize("sample", sorted(SAMPLE_MODELS))
@pytest.mark.parametrize("where", ["posix", "qemu_cortex_m3"])
def test_west_build_and_run_sample(sample, where, tmp_path):
    name = board(where)
    build = tmp_path / "build"
    res = west_build(SAMPLES / sample, name, build)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "mcuforge: generating" in res.stdout and "checking" in res.stdout
    assert (build / "mcuforge" / f"{SAMPLE_MODELS[sample]['name']}_memory.json").is_file()
    env = zephyr_env(name)
    if where == "posix":
        out = run_until([str(build / "zephyr" / "zephyr.exe"), "-stop_at=5"], f"{sample}: done", env, tmp_path)
    else:
        out = run_until([shutil.which("ninja") or "ninja", "-C", str(build), "run"], f"{sample}: done", env, tmp_path)
    for regex in expected_lines(sample):
        assert re.search(regex, out), (regex, out)


BIG_MODEL = """
# Writes hello.onnx / hello_calibration.npy: a conv on a 3x48x48 input, whose arena
# (input 6,912 B + output 18,432 B) is larger than qemu_cortex_m0's 16 KiB of SRAM.
import sys
from pathlib import Path
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
rng = np.random.default_rng(0)
w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
fw = numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "fw")
nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("GlobalAveragePool", ["c"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
         helper.make_node("Gemm", ["f", "fw"], ["y"], transB=1)]
graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 48, 48])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], [w, fw])
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), out / "hello.onnx")
np.save(out / "hello_calibration.npy", rng.standard_normal((4, 3, 48, 48)).astype(np.float32))
"""


def big_model_app(tmp_path: Path) -> Path:
    """hello_inference with a model too large for qemu_cortex_m0."""
    app = tmp_path / "app"
    shutil.copytree(SAMPLES / "hello_inference", app)
    (app / "model" / "make_model.py").write_text(BIG_MODEL)
    return app


@needs_zephyr
def test_model_larger_than_the_boards_sram_fails_before_compiling(tmp_path):
    # qemu_cortex_m0: 16 KiB of SRAM, so CONFIG_MCUFORGE_SRAM_BUDGET_KB defaults to 16, with the post-link
    # check on: the generator stops with the numbers instead of the linker's "region `RAM' overflowed".
    res = west_build(big_model_app(tmp_path), board("qemu_cortex_m0"), tmp_path / "build")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    m = re.search(r"mcuforge: error: model 'hello' needs (\d+) bytes of SRAM \(arena (\d+)\), the budget allows "
                  r"16384: raise --sram-budget \(CONFIG_MCUFORGE_SRAM_BUDGET_KB\) to at least (\d+)K", out)
    assert m, out[-4000:]
    assert int(m.group(2)) > 16384
    assert "overflowed" not in out and "in the linked ELF" not in out, out[-4000:]


@needs_zephyr
def test_over_budget_only_warns_with_memory_check_fail_off(tmp_path):
    # Both checks report and the build goes on: the generator's before compiling, the post-link
    # check's full accounting on zephyr.elf after linking.
    res = west_build(SAMPLES / "keyword_spotting", "qemu_cortex_m3", tmp_path / "build",
                     "-DCONFIG_MCUFORGE_SRAM_BUDGET_KB=8", "-DCONFIG_MCUFORGE_SCHEDULE_LAYER=y",
                     "-DCONFIG_MCUFORGE_MEMORY_CHECK_FAIL=n")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "WARNING: model 'kws' needs 16000 bytes of SRAM (arena 16000), the budget allows 8192" in out
    assert "mcuforge: checking kws in the linked ELF" in out
    # the post-link check counts the model's RAM as arena + worst-case stack (the header's number)
    stack = int(re.search(r"#define KWS_STACK_SIZE (\d+)", (tmp_path / "build" / "mcuforge" / "kws" / "kws.h")
                          .read_text()).group(1))
    assert f"zephyr.elf: over budget: model kws needs {16000 + stack} bytes of SRAM, the budget is 8192" in out
    assert "CONFIG_MCUFORGE_SRAM_BUDGET_KB to at least 16" in out


def twister(tmp_path: Path, *platforms: str) -> tuple[subprocess.CompletedProcess, str]:
    """Twister of the tree, run by the Zephyr environment's Python, on tests/zephyr and samples."""
    cmd = [zephyr_python()[0], str(Path(ZEPHYR_BASE) / "scripts" / "twister"), "-T", str(ZTESTS), "-T", str(SAMPLES),
           *(arg for p in platforms for arg in ("-p", p)), f"-x=ZEPHYR_EXTRA_MODULES={ROOT}",
           f"-x=MCUFORGE_PYTHON={sys.executable}", "--outdir", str(tmp_path / "twister-out"),
           "-j", os.environ.get("MCUFORGE_TWISTER_JOBS", "1"), "--inline-logs"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=zephyr_env("qemu_cortex_m3"), cwd=tmp_path,
                         timeout=5400)
    return res, re.sub(r"\x1b\[[0-9;]*m", "", res.stdout + res.stderr)  # without colours


@needs_zephyr
def test_twister(tmp_path):
    res, out = twister(tmp_path, board("posix"), "qemu_cortex_m3", board("dsp"))
    assert res.returncode == 0, out[-6000:]
    # 4.x: "26 of 26 executed test configurations passed (100.00%), 0 built (not run), 0 failed, 0 errored, ..."
    # 3.2: "26 of 26 test configurations passed (100.00%), 0 failed, ... skipped with 0 warnings ..."
    # (7 ztest scenarios on each of the POSIX board and qemu_cortex_m3, arm-dsp on the DSP board; 6
    # sample scenarios on the POSIX board, 5 on qemu_cortex_m3; the real boards' build-only one
    # filtered out)
    line = next((line for line in out.splitlines() if "test configurations passed" in line), "")
    summary = re.search(r"(\d+) of (\d+) (?:executed )?test configurations passed \(100\.00%\)", line)
    assert summary and int(summary.group(1)) >= 26 and " 0 failed" in line, out[-3000:]


@needs_zephyr
def test_explicit_argument_overrides_kconfig_and_says_so(tmp_path):
    app = tmp_path / "app"
    shutil.copytree(SAMPLES / "hello_inference", app)
    cmake = (app / "CMakeLists.txt").read_text().replace("NAME hello", "NAME hello SRAM_BUDGET 48K SCHEDULE auto")
    (app / "CMakeLists.txt").write_text(cmake)
    res = west_build(app, "qemu_cortex_m3", tmp_path / "build", cmake_only=True)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "mcuforge: hello: SRAM_BUDGET 48K (argument of mcuforge_add_model) overrides " \
           "CONFIG_MCUFORGE_SRAM_BUDGET_KB (64K)" in out  # qemu_cortex_m3: 64 KiB of SRAM
    assert "SCHEDULE auto (argument of mcuforge_add_model) overrides CONFIG_MCUFORGE_SCHEDULE (layer)" in out
    ninja_file = (tmp_path / "build" / "build.ninja").read_text()
    assert "--sram-budget 48K" in ninja_file and "--schedule auto" in ninja_file


def state_records(image: bytes) -> dict[int, int]:
    """generation -> offset of every state record (mcf_state_pack's format: 'MCFS', version 2,
    header size 52, 32-byte identity, state size, generation, CRC-32, state) in a flash image."""
    found, at = {}, image.find(b"MCFS")
    while at >= 0:
        if image[at + 4:at + 8] == (2).to_bytes(2, "little") + (52).to_bytes(2, "little"):
            found[int.from_bytes(image[at + 44:at + 48], "little")] = at
        at = image.find(b"MCFS", at + 1)
    return found


def damage_state_record(flash: Path, out: Path, generation: int, other_model: bool) -> None:
    """A copy of a flash image in which the record of one generation is either torn (one bit of
    the state flipped, CRC left as it was) or of another model (identity changed, CRC made valid
    again)."""
    data = bytearray(flash.read_bytes())
    at = state_records(bytes(data))[generation]
    size = int.from_bytes(data[at + 40:at + 44], "little")
    if other_model:
        data[at + 8] ^= 0xFF
        crc = zlib.crc32(bytes(data[at:at + 48]) + bytes(data[at + 52:at + 52 + size]))
        data[at + 48:at + 52] = crc.to_bytes(4, "little")
    else:
        data[at + 52 + size // 2] ^= 0x01
    out.write_bytes(bytes(data))


@needs_zephyr
def test_on_device_learning_state_survives_a_reset_and_bad_records_are_refused(tmp_path):
    # The sample's "persist" scenario on the POSIX board, whose flash simulator keeps the storage
    # partition in a file (-flash=): learn and save generation 1 in slot 0; boot again, restore it
    # (inference as before the reset), learn one more epoch and save generation 2 in slot 1. Then:
    # generation 2 corrupted (a reset during its write) is refused and generation 1 restored; the
    # only record torn, or of another model, is refused and the model starts from its flash weights.
    scenario = yaml.safe_load((SAMPLES / "on_device_learning" / "sample.yaml").read_text())["tests"][
        "sample.mcuforge.on_device_learning.persist"]
    name, build = board("posix"), tmp_path / "build"
    res = west_build(SAMPLES / "on_device_learning", name, build, *(f"-D{c}" for c in scenario["extra_configs"]))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    want = on_device_learning_reference(tmp_path / "host", more_epochs=1)
    first_boot, fourth_epoch, fourth_checksum = want[:-2], want[-2], want[-1]
    env, exe, flash = zephyr_env(name), str(build / "zephyr" / "zephyr.exe"), tmp_path / "flash.bin"

    def boot(image: Path) -> str:
        return run_until([exe, "-stop_at=5", f"-flash={image}"], "on_device_learning: done", env, tmp_path)

    first = boot(flash)
    assert "no usable saved state (none saved): starting from the flash weights" in first, first
    assert all(line in first for line in first_boot), (first_boot, first)
    assert re.search(r"on_device_learning: saved the trained state \(generation 1, slot 0, \d+ bytes\)", first), first
    after, checksum = first_boot[-3].split()[-1], first_boot[-2]
    one_record = tmp_path / "flash_gen1.bin"
    shutil.copy(flash, one_record)
    second = boot(flash)
    assert "on_device_learning: restored the trained state (generation 1, slot 0)" in second, second
    assert f"on_device_learning: accuracy restored {after}" in second and checksum in second, second
    assert "accuracy before" not in second and "epoch 1 " not in second, second
    assert fourth_epoch in second and fourth_checksum in second and fourth_checksum != checksum, second
    assert re.search(r"saved the trained state \(generation 2, slot 1, \d+ bytes\)", second), second
    assert set(state_records(flash.read_bytes())) == {1, 2}
    # the newest record damaged: refused, the previous generation restored
    for other_model, reason in ((False, "CRC mismatch"), (True, "state of another model or build")):
        image = tmp_path / f"flash_gen2_{'other' if other_model else 'torn'}.bin"
        damage_state_record(flash, image, 2, other_model)
        out = boot(image)
        assert f"on_device_learning: slot 1 refused ({reason}" in out, out
        assert "on_device_learning: restored the trained state (generation 1, slot 0)" in out, out
        assert f"on_device_learning: accuracy restored {after}" in out and checksum in out, out
        # learning goes on from generation 1, and the next save does not touch it (slot 1 again)
        assert fourth_checksum in out and "saved the trained state (generation 2, slot 1," in out, out
    # the only record damaged: refused, the flash weights
    for other_model, reason in ((False, "CRC mismatch"), (True, "state of another model or build")):
        image = tmp_path / f"flash_gen1_{'other' if other_model else 'torn'}.bin"
        damage_state_record(one_record, image, 1, other_model)
        out = boot(image)
        assert re.search(rf"no usable saved state \({reason}[^)]*\)*: starting from the flash weights", out), out
        assert first_boot[0] in out and checksum in out, out  # learns again from the flash weights
        assert "saved the trained state (generation 1, slot 0," in out, out


@needs_zephyr
def test_post_link_check_fails_a_thread_stack_smaller_than_the_models(tmp_path):
    # CONFIG_MAIN_STACK_SIZE (the thread that runs hello_inference's model) below the header's
    # HELLO_STACK_SIZE: the build stops naming the symbol and both numbers.
    build = tmp_path / "build"
    res = west_build(SAMPLES / "hello_inference", "qemu_cortex_m3", build, "-DCONFIG_MAIN_STACK_SIZE=128")
    out = res.stdout + res.stderr
    header = (build / "mcuforge" / "hello" / "hello.h").read_text()
    need = int(re.search(r"#define HELLO_STACK_SIZE (\d+)", header).group(1))
    assert need > 128 and res.returncode != 0, out[-4000:]
    assert (f"model hello needs {need} bytes of stack on its deepest path, the thread that runs it has 128 bytes; "
            f"raise CONFIG_MAIN_STACK_SIZE to at least {need}") in out, out[-4000:]


@needs_zephyr
def test_model_in_its_own_thread_is_checked_against_that_threads_stack(tmp_path):
    # on_device_learning runs its model in a thread of CONFIG_MCUFORGE_THREAD_STACK_SIZE bytes: the
    # post-link check compares the model's stack with that, not with CONFIG_MAIN_STACK_SIZE. A main
    # stack smaller than the model's passes; a thread stack smaller fails naming the symbol.
    build = tmp_path / "build"
    res = west_build(SAMPLES / "on_device_learning", "qemu_cortex_m3", build, "-DCONFIG_MAIN_STACK_SIZE=128")
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    header = (build / "mcuforge" / "odl" / "odl.h").read_text()
    need = max(int(v) for v in re.findall(r"#define ODL_(?:TRAIN_STEP_)?STACK_SIZE (\d+)", header))
    assert 128 < need < 3072
    report = json.loads((build / "mcuforge" / "odl_memory.json").read_text())["model"]
    assert report["thread_stack_bytes"] == 3072 and report["stack_bytes"] == need
    res = west_build(SAMPLES / "on_device_learning", "qemu_cortex_m3", tmp_path / "small",
                     "-DCONFIG_MCUFORGE_THREAD_STACK_SIZE=128")
    out = res.stdout + res.stderr
    assert res.returncode != 0, out[-4000:]
    assert (f"model odl needs {need} bytes of stack on its deepest path, the thread that runs it has 128 bytes; "
            f"raise CONFIG_MCUFORGE_THREAD_STACK_SIZE to at least {need}") in out, out[-4000:]


def functions_with(elf: Path, mnemonic: str) -> set[str]:
    """Functions of an Arm ELF whose disassembly (arm-none-eabi-objdump) has the instruction."""
    objdump = shutil.which("arm-none-eabi-objdump")
    if objdump is None:
        pytest.skip("arm-none-eabi-objdump not found (binutils-arm-none-eabi)")
    text = subprocess.run([objdump, "-d", str(elf)], capture_output=True, text=True, check=True).stdout
    found, function = set(), None
    for line in text.splitlines():
        m = re.match(r"^[0-9a-f]+ <([^>]+)>:$", line)
        if m:
            function = m.group(1)
        elif function and re.search(rf"\t{mnemonic}(\.w)?\t", line):
            found.add(function)
    return found


@needs_zephyr
def test_arm_dsp_executes_the_dsp_instructions_under_qemu(tmp_path):
    # The arm-dsp scenario of tests/zephyr/inference on the Cortex-M55 of mps3_an547: Zephyr compiles
    # it with the DSP extension, the kernels' SMLAD is in the ELF, and QEMU runs the ztest suite
    # (the reference's bytes). On mps2/an521/cpu0, which Zephyr builds +nodsp, the build says
    # that the kernels run as plain C.
    scenario = yaml.safe_load((ZTESTS / "inference" / "testcase.yaml").read_text())["tests"][
        "mcuforge.inference.kernels_arm_dsp"]
    configs = [f"-D{c}" for c in scenario["extra_configs"]]
    name, build = board("dsp"), tmp_path / "build"
    res = west_build(ZTESTS / "inference", name, build, *configs)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "mcuforge: testnet: arm-dsp kernels with the DSP extension's instructions (SMLAD, SXTB16)" in out, \
        out[-4000:]
    assert "run as plain C" not in out
    assert "CONFIG_ARMV8_M_DSP=y" in (build / "zephyr" / ".config").read_text()
    smlad = functions_with(build / "zephyr" / "zephyr.elf", "smlad")
    assert any(f.startswith("mcf_dsp") for f in smlad), sorted(smlad)
    ran = run_until([shutil.which("ninja") or "ninja", "-C", str(build), "run"], "PROJECT EXECUTION",
                    zephyr_env(name), tmp_path, timeout=300)
    assert "PROJECT EXECUTION SUCCESSFUL" in ran and re.search(r"PASS - test_outputs_equal_reference", ran), ran[-3000:]
    nodsp = west_build(ZTESTS / "inference", board("mps2_an521"), tmp_path / "an521", *configs, cmake_only=True)
    out = nodsp.stdout + nodsp.stderr
    assert nodsp.returncode == 0, out[-4000:]
    assert re.search(r"mcuforge: testnet: NOTE: arm-dsp kernels on a core built without the DSP extension "
                     r"\(CONFIG_ARMV8_M_DSP is not set on mps2[_/]an521[^)]*\): they run as plain C", out), out[-4000:]
