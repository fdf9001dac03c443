# Two commands do all set-up on a fresh machine:
#   make run    — create .venv if missing, install what serving needs, serve on the SQLite default
#   make test   — create .venv if missing, install with the test extra, run the whole suite
# Each install has its own stamp: `make run` never installs the test extra (Playwright, mypy,
# ruff, schemathesis, the four frameworks); lint, bench and docs use the test install.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
RUN_STAMP  := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: run test test-failover lint bench install install-test browser failover-tools clean docs

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	# bytecode for src/ even where PYTHONDONTWRITEBYTECODE is set: CLI start-up time
	$(BIN)/python -m compileall -q src >/dev/null
	touch $@

# The test extra includes everything `run` needs, so it satisfies the run stamp too.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -m compileall -q src >/dev/null
	touch $@ $(RUN_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

run: $(RUN_STAMP)
	$(BIN)/sessionkeeper serve

browser:
	bash scripts/ensure-chromium.sh

failover-tools:
	bash scripts/ensure-pg-auto-failover.sh

# Two workers (pytest-xdist), each file on one worker: most tests wait on fsync, PostgreSQL,
# a subprocess or the browser, so two at once take ~60% of the serial time on 2 cores.
# The failover test (~1 min, builds a pg_auto_failover formation) has its own target.
test: $(TEST_STAMP) browser
	$(BIN)/pytest -q -n 2 --dist loadfile -m "not failover"

test-failover: $(TEST_STAMP) failover-tools
	$(BIN)/pytest -q -rP -m failover

lint: $(TEST_STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy --strict src/sessionkeeper

bench: $(TEST_STAMP)
	$(BIN)/python bench/run.py --db both --scale small

docs: $(TEST_STAMP)
	$(BIN)/python -m sessionkeeper.cli.docs > docs/cli.md
	$(BIN)/python scripts/layout.py --write

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
