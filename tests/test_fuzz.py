"""Fuzzing in the suite (see tests/fuzzing.py).

The corpus (seeds and hostile files) is built once per session (per xdist
worker) by tests/make_fuzz_corpus.py; no model file of it is committed.

* the build gives the files of tests/fuzz_corpus/manifest.json, byte for byte
  (with other versions of torch, onnx, onnxruntime &c. than the manifest's,
  only their names), and the expectations of hostile/expected.json;
* every hand-made hostile file gives the exit code and error its entry in
  expected.json states, within the invariant (no traceback, nothing
  half-written); those that compile build without warnings and run clean
  under ASan+UBSan;
* every saved crash (a recipe in tests/fuzz_corpus/crashes) rebuilds the
  very input that crashed and now keeps the invariant, through the frontend
  and through ``compile``; the recipes the fuzzer writes rebuild its mutants;
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
import make_fuzz_corpus

pytest.importorskip("hypothesis")
pytest.importorskip("tflite_micro")

CORPUS = fuzzing.CORPUS
EXPECTED = json.loads((CORPUS / "hostile" / "expected.json").read_text())
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
CRASHES = fuzzing.crash_names()
SEEDS = sorted(n.partition("/")[2] for n in MANIFEST["files"] if n.startswith("seeds/"))
FUZZ_SECONDS = 30
MEMORY_MB = 3072


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """The seeds and hostile files, built once per session and xdist worker (about 5 s of one core)."""
    return fuzzing.build_corpus(tmp_path_factory.mktemp("fuzz_corpus"))


def _other_versions() -> dict[str, tuple[str, str]]:
    """{package: (the manifest's version, this one)} where this environment differs from the manifest's."""
    pinned, here = MANIFEST["built_with"], make_fuzz_corpus.versions()
    return {k: (pinned.get(k, "absent"), v) for k, v in here.items() if pinned.get(k, "absent") != v}


def _other_cpu() -> dict[str, tuple[str, str]]:
    """{what: (the manifest's, this machine's)} where the CPU features the bytes depend on differ."""
    pinned, here = MANIFEST.get("built_on", {}), make_fuzz_corpus.manifest_machine()
    return {k: (pinned.get(k, "unrecorded"), v) for k, v in here.items() if pinned.get(k, "unrecorded") != v}


def test_corpus_is_the_manifests(corpus):
    built = make_fuzz_corpus.manifest(corpus)
    assert json.loads((corpus / "hostile" / "expected.json").read_text()) == EXPECTED, \
        "hostile/expected.json is stale: rerun tests/make_fuzz_corpus.py --update"
    assert sorted(built["files"]) == sorted(MANIFEST["files"]), \
        "the corpus built has other files than manifest.json: rerun tests/make_fuzz_corpus.py --update"
    changed = sorted(n for n, f in built["files"].items() if f != MANIFEST["files"][n])
    if changed and _other_versions():
        pytest.skip(f"built with other versions than manifest.json ({_other_versions()}): {changed} differ")
    # the QDQ seeds' scales come from onnxruntime's calibration, float inferences whose last bits can depend
    # on the kernels onnxruntime picks for this CPU (the float seeds do not: see make_fuzz_corpus.py)
    cpu = _other_cpu()
    if changed and cpu and all(n.endswith("_qdq.onnx") for n in changed):
        pytest.skip(f"built on a CPU of other onnxruntime float kernels than manifest.json ({cpu}): "
                    f"{changed} differ")
    assert not changed, ("the same versions built other bytes (nondeterminism, or a builder changed without "
                         f"tests/make_fuzz_corpus.py --update): {changed}")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_file(name, corpus, tmp_path):
    want = EXPECTED[name]
    data = (corpus / "hostile" / name).read_bytes()
    fmt = fuzzing.format_of(data)
    assert fuzzing.check_one(fmt, fmt, data, 60) in ("loaded", "refused")
    rc, err = fuzzing.run_compile(fmt, data, tmp_path, sanitize=want["exit"] == 0)
    errors = [line for line in err.splitlines() if line.startswith("mcuforge: error:")]
    assert rc == want["exit"], err
    if rc:
        assert len(errors) == 1 and want["error_contains"] in errors[0], err
        assert "model." in errors[0]  # names the file


@pytest.mark.parametrize("name", CRASHES)
def test_saved_crash_is_fixed(name, corpus, tmp_path):
    found = json.loads((fuzzing.CRASHES / (name + ".json")).read_text())
    try:
        data = fuzzing.rebuild_crash(name, corpus)
    except fuzzing.RecipeError as err:
        if err.missing and found["from"].startswith("mlperf/"):
            pytest.skip(str(err))
        if err.base_changed and _other_versions():
            pytest.skip(f"{err}; built with other versions than manifest.json: {_other_versions()}")
        raise
    assert fuzzing._sha(data) == found["sha256"] and name == found["file"]
    fmt = fuzzing.format_of(data)
    fuzzing.check_one(fmt, fmt, data, 60)
    # a model that compiles is also built and run under ASan+UBSan, as the fuzzer found some crashes
    fuzzing.check_one("compile", fmt, data, 120, sanitize=True, options=found["options"])


def test_recipes_rebuild_mutants(corpus, tmp_path):
    """The recipe --save-crashes writes rebuilds the input, byte for byte, for mutants of every kind
    (byte-level and structural, splices of two files among them)."""
    import random

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    seeds = fuzzing.load_seeds(corpus, log=lambda *_: None)
    fuzzer = fuzzing.Fuzzer(seeds, 60, tmp_path, log=lambda *_: None)
    kept = []

    @settings(database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(draw):
        fmt = draw.draw(st.sampled_from(["onnx", "tflite"]))
        name, seed = draw.draw(st.sampled_from([s for s in seeds[fmt] if len(s[1]) < 60_000]))
        mutant = fuzzing.mutate(seed, fmt, draw.draw, [s for _, s in seeds[fmt]])
        fuzzer.record(fmt, fmt, mutant, fuzzing.Crash(f"case {len(kept)}", ""), name, [])
        kept.append((f"{fmt}-{fuzzing._sha(mutant)[:12]}{fuzzing.SUFFIX[fmt]}", mutant))

    rng = random.Random(0)
    for _ in range(150):
        one.hypothesis.fuzz_one_input(rng.randbytes(1024))
    assert len({name for name, _ in kept}) > 100
    recipes = [json.loads((tmp_path / f"{name}.json").read_text()) for name, _ in kept]
    kinds = {k for r in recipes for e in r["edits"] for k in e if k not in ("at", "delete")}
    assert kinds == {"insert", "insert_zlib", "copy"}, kinds
    for (name, mutant), recipe in zip(kept, recipes):
        assert recipe["file"] == name and recipe["sha256"] == fuzzing._sha(mutant)
        assert fuzzing.rebuild_crash(name, corpus, tmp_path) == mutant


@pytest.mark.parametrize("name", SEEDS)
def test_seed_compiles(name, corpus, tmp_path):
    data = (corpus / "seeds" / name).read_bytes()
    rc, err = fuzzing.run_compile(fuzzing.format_of(data), data, tmp_path)
    assert rc == 0, err


def test_address_space_limit_bites(tmp_path):
    """The limit the fuzzing run works under does stop an allocation of 10^12 bytes."""
    code = (f"import fuzzing; fuzzing.limit_resources({MEMORY_MB}); import numpy\n"
            "try:\n    numpy.ones(10**12, numpy.int8)\nexcept MemoryError:\n    raise SystemExit(42)\n")
    res = subprocess.run([sys.executable, "-c", code], cwd=Path(fuzzing.__file__).parent, capture_output=True,
                         timeout=120)
    assert res.returncode == 42, res.stderr


def test_bounded_fuzzing_run(corpus, tmp_path):
    summary = tmp_path / "summary.json"
    res = subprocess.run([sys.executable, fuzzing.__file__, "--corpus", str(corpus), "--seconds", str(FUZZ_SECONDS),
                          "--seed", "0",
                          "--memory-mb", str(MEMORY_MB), "--input-timeout", "120", "--sanitize-every", "15",
                          "--save-crashes", str(tmp_path / "crashes"), "--json", str(summary)],
                         capture_output=True, text=True, timeout=900)  # generous: a loaded machine
    print(res.stdout[-3000:], res.stderr[-3000:])
    result = json.loads(summary.read_text())
    assert result["distinct_crashes"] == 0, json.dumps(result["crashes"], indent=2) + res.stdout[-3000:]
    assert res.returncode == 0, res.stderr
    for target in fuzzing.TARGETS:  # every target really ran
        assert result["inputs_tried"].get(target, 0) >= 20, result
