# Two commands set up and run everything: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench bench-quick lint clean

venv: $(STAMP)

# The constraints file pins torch 2.13.0 (CPU wheel) and every other dependency;
# pyproject.toml only states ranges.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: venv
	$(BIN)/python -m dgm.demo --out runs/demo

# Two pytest-xdist workers, one per core of a small machine (TEST_WORKERS=0: in-process);
# loadgroup keeps the tests that share a module-scoped fixture on one worker (conftest.py).
# PYTHONDONTWRITEBYTECODE= (empty: off) lets pytest and the processes the tests start keep
# their compiled files; with it set, each run re-rewrites every test module's asserts and
# recompiles dgm in every process (about 3.5 CPU-s per worker measured).
TEST_WORKERS ?= 2

test: venv
	$(BIN)/ruff check src tests benchmarks
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup

# The benchmarks also compare with pythae, a bench-only extra (never a dgm dependency).
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run --quick

lint: venv
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
