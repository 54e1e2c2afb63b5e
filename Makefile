# `make run`  : create .venv if needed, install, run the daemon on config/monitor.toml (SQLite).
# `make test` : create .venv if needed, install dev deps, run lint, types, migration check, tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/monitor.toml
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEV_STAMP := $(STAMP)-dev

.PHONY: run test lint types migrations-check pytest install install-dev clean screenshot

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP) $@

install: $(STAMP)
install-dev: $(DEV_STAMP)

run: $(STAMP)
	$(BIN)/monitor --config $(CONFIG) run

test: $(DEV_STAMP)
	$(MAKE) lint types migrations-check pytest

lint: $(DEV_STAMP)
	$(BIN)/ruff check .

types: $(DEV_STAMP)
	$(BIN)/mypy

# Models and migrations must agree: upgrade a scratch SQLite database, then `alembic check`.
migrations-check: $(DEV_STAMP)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  MONITOR_DATABASE_URL="sqlite:///$$tmp/check.db" $(BIN)/alembic upgrade head >/dev/null 2>&1 && \
	  MONITOR_DATABASE_URL="sqlite:///$$tmp/check.db" $(BIN)/alembic check

# In parallel (pytest-xdist): every test has its own files, ports and databases. Four
# processes on two cores: most tests wait on servers, subprocesses and sleeps, not the CPU.
PYTEST_WORKERS ?= 4
pytest: $(DEV_STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# docs/digest.png: the golden HTML digest as headless Chromium draws it (Debian's
# `chromium` package: apt-get install chromium). Re-run after changing the templates.
CHROMIUM ?= chromium
screenshot:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	for pair in desk:digest:1010 desk-later:digest-later:540; do \
	  golden=$${pair%%:*}; rest=$${pair#*:}; png=$${rest%%:*}; height=$${rest#*:}; \
	  $(CHROMIUM) --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	    --disable-background-networking --disable-component-update --disable-sync \
	    --user-data-dir="$$tmp" --hide-scrollbars --window-size=760,$$height \
	    --screenshot=docs/$$png.png "file://$(CURDIR)/tests/golden/digest/$$golden.html" \
	    2>/dev/null || exit 1; \
	  echo "wrote docs/$$png.png"; \
	done

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
