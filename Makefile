# Two commands matter: `make serve` and `make test` (see README). Both build .venv themselves
# from nothing but python3, reinstalling only when pyproject.toml changes.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: serve test lint chromium bubblewrap fuzz load bench bench-postgres clean

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
serve: $(VENV)/.installed bubblewrap
	$(BIN)/runyard serve --workers examples/workers

## Lint, type-check and run the whole test suite
test: $(VENV)/.installed-dev lint chromium bubblewrap
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## The console's browser tests (tests/browser) drive Debian's Chromium through Playwright; never
## `playwright install`, which downloads a browser of its own. Installed as root when missing;
## otherwise those tests are skipped (or fail where RUNYARD_TEST_REQUIRE_SERVICES is set).
chromium:
	@if [ -x "$${RUNYARD_TEST_CHROMIUM:-/usr/bin/chromium}" ] || command -v chromium >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser tests"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium >/dev/null; \
	else \
		echo "chromium not found: the browser tests will be skipped (install it: sudo apt-get install chromium, or set RUNYARD_TEST_CHROMIUM)"; \
	fi

## Worker processes run inside a bubblewrap sandbox (docs/security.md). Installed from Debian's
## packages as root when missing; otherwise runs refuse to start until it is installed, unless
## the operator opts into RUNYARD_SANDBOX=none.
bubblewrap:
	@if command -v bwrap >/dev/null 2>&1; then \
		:; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's bubblewrap (the worker sandbox)"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends bubblewrap >/dev/null; \
	else \
		echo "bwrap not found: install it (sudo apt-get install bubblewrap) to run workers sandboxed"; \
	fi

## Schemathesis against /openapi.json, deeper than `make test` does (FUZZ_EXAMPLES per operation)
fuzz: $(VENV)/.installed-dev bubblewrap
	RUNYARD_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),300) $(BIN)/python -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

## Load on loopback: 200 clients paging a 1,000,000-row run while 4 runs ingest, 60 s (LOAD_ARGS)
load: $(VENV)/.installed-bench bubblewrap
	$(BIN)/python benchmarks/load.py $(LOAD_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy

## Benchmarks (not part of the tests): prints ratios against baselines measured in the same run
bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/results.py $(BENCH_ARGS)
	$(BIN)/python benchmarks/workers.py $(WORKERS_BENCH_ARGS)
	$(BIN)/python benchmarks/client.py $(CLIENT_BENCH_ARGS)
	$(BIN)/python benchmarks/console.py $(CONSOLE_BENCH_ARGS)
	$(if $(POSTGRES),$(MAKE) --no-print-directory bench-postgres)

## PostgreSQL next to SQLite in one run, into benchmarks/POSTGRES.md (or `make bench POSTGRES=URL`
## after the SQLite benchmarks). POSTGRES=URL, default postgresql://127.0.0.1:5432/test: each
## benchmark creates a fresh schema there and drops it.
bench-postgres: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/results.py --postgres $(if $(POSTGRES),'$(POSTGRES)') $(BENCH_ARGS)
	$(BIN)/python benchmarks/workers.py --postgres $(if $(POSTGRES),'$(POSTGRES)') $(WORKERS_BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis src/*.egg-info
