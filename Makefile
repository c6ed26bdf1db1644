# mcuforge: `make demo` and `make test` set up everything on a fresh Debian machine.
PY := .venv/bin/python
JOBS ?= 2

.PHONY: demo test bench fuzz clean

demo:
	@bash scripts/bootstrap.sh demo
	$(PY) -m mcuforge.tools.demo

test:
	@bash scripts/bootstrap.sh test
	$(PY) -m pytest -n $(JOBS) -q tests

# Long fuzzing run (the suite runs about half a minute of it) over the corpus tests/make_fuzz_corpus.py
# builds first (no model file is committed): every distinct crash is written to
# tests/fuzz_corpus/crashes as a text recipe (corpus file + byte edits; the suite rebuilds and
# replays them); every 10th model that compiles also runs under ASan+UBSan.
# FUZZ_SECONDS=600 make fuzz for a shorter run.
FUZZ_SECONDS ?= 1800
fuzz:
	@bash scripts/bootstrap.sh test
	$(PY) tests/fuzzing.py --seconds $(FUZZ_SECONDS) --save-crashes tests/fuzz_corpus/crashes --sanitize-every 10 \
		--json fuzz-summary.json

bench:
	@bash scripts/bootstrap.sh test
	$(PY) bench/memory.py
	$(PY) bench/mlperf_tiny.py
	$(PY) bench/mobilenet_v3.py
	$(PY) bench/patch.py
	$(PY) bench/speed.py
	$(PY) bench/nas.py
	$(PY) bench/nas.py --space families
	$(PY) bench/int16.py

clean:
	rm -rf out build .pytest_cache fuzz-summary.json
