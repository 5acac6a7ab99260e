# Two commands from a fresh clone: `make demo` and `make test`. Each sets itself up.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The first Python 3.11+ on PATH.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: test demo fmt lint clean

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

fmt: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# `make demo DEMO_PORT_BASE=6000` moves the four servers to ports 6000-6003.
demo: $(VENV)/.installed
	@$(BIN)/python -m relying_party_demo.run

# Start over: the database, the demo apps' data and the generated keys go; keys/README.md stays.
clean:
	rm -rf $(VENV) instance .pytest_cache .mypy_cache .ruff_cache .coverage
	find keys -mindepth 1 ! -name README.md ! -name .gitignore -delete
