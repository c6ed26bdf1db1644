"""Fuzzing in the suite (see tests/fuzzing.py).

* every hand-made hostile file of tests/fuzz_corpus/hostile gives the exit
  code and error its entry in expected.json states, within the invariant
  (no traceback, nothing half-written); those that compile build without
  warnings and run clean under ASan+UBSan;
* every saved crash (tests/fuzz_corpus/crashes) now keeps the invariant,
  through the frontend and through ``compile``;
* the seeds compile;
* a bounded fuzzing run (about a minute over the three targets, under an
  address-space limit; every 15th model that compiles also runs under
  ASan+UBSan) finds no input that breaks the invariant.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import fuzzing

pytest.importorskip("hypothesis")
pytest.importorskip("tflite_micro")

CORPUS = fuzzing.CORPUS
EXPECTED = json.loads((CORPUS / "hostile" / "expected.json").read_text())
CRASHES = sorted(f.name for f in (CORPUS / "crashes").glob("*") if f.suffix in (".onnx", ".tflite"))
SEEDS = sorted(f.name for f in (CORPUS / "seeds").glob("*") if f.suffix in (".onnx", ".tflite"))
FUZZ_SECONDS = 50
MEMORY_MB = 3072


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_file(name, tmp_path):
    want = EXPECTED[name]
    data = (CORPUS / "hostile" / name).read_bytes()
    fmt = fuzzing.format_of(data)
    assert fuzzing.check_one(fmt, fmt, data, 60) in ("loaded", "refused")
    rc, err = fuzzing.run_compile(fmt, data, tmp_path, sanitize=want["exit"] == 0)
    errors = [line for line in err.splitlines() if line.startswith("mcuforge: error:")]
    assert rc == want["exit"], err
    if rc:
        assert len(errors) == 1 and want["error_contains"] in errors[0], err
        assert "model." in errors[0]  # names the file


@pytest.mark.parametrize("name", CRASHES)
def test_saved_crash_is_fixed(name, tmp_path):
    data = (CORPUS / "crashes" / name).read_bytes()
    found = json.loads((CORPUS / "crashes" / (name + ".json")).read_text())
    fmt = fuzzing.format_of(data)
    fuzzing.check_one(fmt, fmt, data, 60)
    fuzzing.check_one("compile", fmt, data, 120, options=found["options"])


@pytest.mark.parametrize("name", SEEDS)
def test_seed_compiles(name, tmp_path):
    data = (CORPUS / "seeds" / name).read_bytes()
    rc, err = fuzzing.run_compile(fuzzing.format_of(data), data, tmp_path)
    assert rc == 0, err


def test_address_space_limit_bites(tmp_path):
    """The limit the fuzzing run works under does stop an allocation of 10^12 bytes."""
    code = (f"import fuzzing; fuzzing.limit_resources({MEMORY_MB}); import numpy\n"
            "try:\n    numpy.ones(10**12, numpy.int8)\nexcept MemoryError:\n    raise SystemExit(42)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=Path(fuzzing.__file__).parent, capture_output=True,
                         timeout=120)
    assert res.returncode == 42, res.stderr


def test_bounded_fuzzing_run(tmp_path):
    summary = tmp_path / "summary.json"
    res = subprocess.run([sys.executable, fuzzing.__file__, "--seconds", str(FUZZ_SECONDS), "--seed", "0",
                          "--memory-mb", str(MEMORY_MB), "--input-timeout", "120", "--sanitize-every", "15",
                          "--save-crashes", str(tmp_path / "crashes"), "--json", str(summary)],
                         capture_output=True, text=True, timeout=900)  # generous: a loaded machine
    print(res.stdout[-3000:], res.stderr[-3000:])
    result = json.loads(summary.read_text())
    assert result["distinct_crashes"] == 0, json.dumps(result["crashes"], indent=2) + res.stdout[-3000:]
    assert res.returncode == 0, res.stderr
    for target in fuzzing.TARGETS:  # every target really ran
        assert result["inputs_tried"].get(target, 0) >= 20, result
