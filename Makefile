# Two commands from a fresh clone: `make demo` and `make test`. Each sets itself up.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# The first Python 3.11+ on PATH.
PYTHON ?= $(shell for p in python3 python3.13 python3.12 python3.11; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: test demo fmt ruff lint lock clean bench bench-smoke

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)

# constraints.txt pins every dependency (Authlib, xmlsec/lxml drift breaks things silently).
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# Re-pin: install the newest versions pyproject.toml allows into a scratch venv and freeze them.
LOCK_VENV := .lock-venv
lock:
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required" >&2; exit 1; }
	rm -rf $(LOCK_VENV)
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LOCK_VENV)/bin/python -m pip install --quiet -e '.[dev]'
	{ sed -n '/^#/p' constraints.txt; \
	  $(LOCK_VENV)/bin/python -m pip freeze --exclude-editable --exclude idp; } > constraints.new
	mv constraints.new constraints.txt
	rm -rf $(LOCK_VENV)

ruff: $(VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lint: ruff
	$(BIN)/mypy

# pytest-xdist: one worker per core and one more, each with its own databases; coverage is
# combined. The extra worker runs while another waits on real time, a live server or a
# browser (2 cores: pytest 254 s with 2 workers, 226 s with 3, 239 s with 4).
# loadgroup: tests spread one by one, except the modules that share a live server.
PYTEST_WORKERS ?= $(shell echo $$(( $$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1) + 1 )))
# Test files on tmpfs where there is one: SQLite's fsyncs cost a third of the run.
# Bytecode caches on: each worker imports every test module (assertion rewriting included).
TEST_TMPDIR ?= $(shell test -d /dev/shm -a -w /dev/shm && echo /dev/shm || echo $${TMPDIR:-/tmp})
# `make test` prints its wall time, set-up and lint included.
STARTED := $(shell date +%s)

# `make lint`'s checks; mypy (~9 s on a fresh clone) runs beside pytest instead of before it,
# and its verdict is printed, and counts, after pytest's.
test: ruff
	@mypy_log=$$(mktemp); $(BIN)/mypy >$$mypy_log 2>&1 & mypy=$$!; \
	status=0; TMPDIR=$(TEST_TMPDIR) PYTHONDONTWRITEBYTECODE= $(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup \
		$(PYTEST_ARGS) || status=$$?; \
	wait $$mypy || status=1; echo "mypy: $$(cat $$mypy_log)"; rm -f $$mypy_log; \
	echo "make test: $$(( $$(date +%s) - $(STARTED) )) s"; exit $$status

fmt: $(VENV)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# A real `idp serve` against oidc-provider (npm), loop by loop: docs/benchmarks.md.
# `make bench BENCH_ARGS="--db postgresql --duration 30"`; `--help` lists the options.
bench: $(VENV)/.installed
	$(BIN)/python bench/run.py $(BENCH_ARGS)

# Every loop for one second against idp alone, failing on any error: CI runs it after the tests.
bench-smoke: $(VENV)/.installed
	$(BIN)/python bench/run.py --duration 1 --warmup 0 --no-peer --fail-on-error $(BENCH_ARGS)

# `make demo DEMO_PORT_BASE=6000` moves the four servers to ports 6000-6003.
demo: $(VENV)/.installed
	@$(BIN)/python -m relying_party_demo.run

# Start over: the database, the demo apps' data and the generated keys go; keys/README.md stays.
clean:
	rm -rf $(VENV) $(LOCK_VENV) instance .pytest_cache .mypy_cache .ruff_cache .coverage
	find keys -mindepth 1 ! -name README.md ! -name .gitignore -delete
