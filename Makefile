# Two commands do all set-up on a fresh machine:
#   make run    — create .venv if missing, install, serve on the SQLite default
#   make test   — create .venv if missing, install with test extras, run the whole suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench install browser clean docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	# bytecode for src/ even where PYTHONDONTWRITEBYTECODE is set: CLI start-up time
	$(BIN)/python -m compileall -q src >/dev/null
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/sessionkeeper serve

browser:
	bash scripts/ensure-chromium.sh

test: $(STAMP) browser
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy --strict src/sessionkeeper

bench: $(STAMP)
	$(BIN)/python bench/run.py --db both --scale small

docs: $(STAMP)
	$(BIN)/python -m sessionkeeper.cli.docs > docs/cli.md
	$(BIN)/python scripts/layout.py --write

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
