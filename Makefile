# mcuforge: `make demo` and `make test` set up everything on a fresh Debian machine.
PY := .venv/bin/python
JOBS ?= 2

.PHONY: demo test bench clean

demo:
	@bash scripts/bootstrap.sh demo
	$(PY) -m mcuforge.demo

test:
	@bash scripts/bootstrap.sh test
	$(PY) -m pytest -n $(JOBS) -q tests

bench:
	@bash scripts/bootstrap.sh test
	$(PY) bench/memory.py
	$(PY) bench/mlperf_tiny.py
	$(PY) bench/patch.py
	$(PY) bench/nas.py

clean:
	rm -rf out build .pytest_cache
