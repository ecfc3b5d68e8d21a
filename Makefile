# Two commands matter: `make serve` and `make test` (see README). Both build .venv themselves
# from nothing but python3, reinstalling only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: serve test lint bench bench-postgres clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $@ $(VENV)/.installed

$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $@ $(VENV)/.installed-dev $(VENV)/.installed

## Serve the API at http://127.0.0.1:8000 with its data in ./.runyard
serve: $(VENV)/.installed
	$(BIN)/runyard serve --workers examples/workers

## Lint, type-check and run the whole test suite
test: $(VENV)/.installed-dev lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

## Benchmarks (not part of the tests): prints ratios against baselines measured in the same run
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/results.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/workers.py $(WORKERS_BENCH_ARGS)
	$(BIN)/python benchmarks/client.py $(CLIENT_BENCH_ARGS)
	$(if $(POSTGRES),$(MAKE) --no-print-directory bench-postgres)

## PostgreSQL next to SQLite in one run, into benchmarks/POSTGRES.md (or `make bench POSTGRES=URL`
## after the SQLite benchmarks). POSTGRES=URL, default postgresql://127.0.0.1:5432/test: each
## benchmark creates a fresh schema there and drops it.
bench-postgres: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/results.py --postgres $(if $(POSTGRES),'$(POSTGRES)') $(BENCH_ARGS)
	$(BIN)/python benchmarks/workers.py --postgres $(if $(POSTGRES),'$(POSTGRES)') $(WORKERS_BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis src/*.egg-info
