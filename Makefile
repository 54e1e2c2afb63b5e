# `make run`  : create .venv if needed, install, run the daemon on config/monitor.toml (SQLite).
# `make test` : create .venv if needed, install dev deps, run lint, types, migration check, tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= config/monitor.toml
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
DEV_STAMP := $(STAMP)-dev

.PHONY: run test lint types migrations-check pytest install install-dev clean screenshot \
	screenshots chromium demo

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
pytest: $(DEV_STAMP) chromium
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

# The browser tests drive Debian's chromium (Playwright's own download cannot reach the
# network here). Installed when missing and apt-get may run (root); never fails: without
# it the browser tests are skipped with the reason.
chromium:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$CHROMIUM" ] || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	    { echo "installing Debian's chromium for the browser tests"; \
	      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	        chromium >/dev/null 2>&1 || \
	      { apt-get update -qq >/dev/null 2>&1 && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
	          chromium >/dev/null 2>&1; }; } ; } || \
	  echo "no chromium (not root, or apt-get failed): the browser tests will be skipped"

# docs/web-today.png, web-story.png, web-feeds.png for the README: the review page over
# the browser tests' site, drawn by headless Chromium.
screenshots: $(DEV_STAMP) chromium screenshot
	$(BIN)/python tests/screenshots.py docs

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

# monitor at work without the internet (deploy/demo.py): a local news site and mail
# server, the daemon for DEMO_SECONDS; leaves DEMO_OUT/ with the database, the digest
# (digest.eml, digest.html), the daemon's log and SUMMARY.md, which says what to try next.
DEMO_SECONDS ?= 60
DEMO_OUT ?= demo
demo: $(DEV_STAMP)
	$(BIN)/python deploy/demo.py --out $(DEMO_OUT) --seconds $(DEMO_SECONDS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
