# The two commands a newcomer needs: `make run` and `make test`. Both install what is missing.
SHELL := /bin/bash
PYTHON ?= python3
HOST ?= 127.0.0.1
PORT ?= 8000

TOOLS := .tools
UV := $(TOOLS)/bin/uv
UV_VERSION := 0.13.8
VENV := .venv
PY := $(VENV)/bin/python

# Use the machine's Python; never download an interpreter.
export UV_PYTHON_DOWNLOADS := never
# Where collectstatic writes; the settings read the same variable.
export STATIC_ROOT ?= $(CURDIR)/staticfiles

.PHONY: install run demo test test-postgres test-fast bench bench-quick lint format clean

# uv bootstraps itself into a private venv with nothing but python3 and pip.
$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.installed: $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed

# Collecting and compressing takes seconds: only redo it when a static file or a package changed.
$(STATIC_ROOT)/.collected: $(VENV)/.installed $(shell find static -type f 2>/dev/null)
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@touch $@

run: install $(STATIC_ROOT)/.collected
	$(PY) manage.py migrate --noinput
	$(PY) manage.py create_first_admin --login-url "http://$(HOST):$(PORT)/accounts/login/"
	exec $(PY) -m chatsite.serve --bind "$(HOST)" --port "$(PORT)" chatsite.asgi:application

# The app against the fake Ollama (no Ollama or model weights needed), with its own data.
demo: install $(STATIC_ROOT)/.collected
	exec bash scripts/demo

test: install
	bash scripts/ensure-chromium
	$(PY) -m pytest

# The suite again on PostgreSQL and Redis (the channel layer too): what several workers use.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/chat
TEST_REDIS_URL ?= redis://127.0.0.1:6379/8
test-postgres: install
	DATABASE_URL="$(TEST_DATABASE_URL)" REDIS_URL="$(TEST_REDIS_URL)" $(PY) -m pytest -m "not browser"

# Benchmarks (not part of make test): a table on the terminal, JSON in bench-results/.
# A few minutes; bench-quick in under one. See docs/performance.md.
bench: install $(STATIC_ROOT)/.collected
	$(PY) -m tests.benchmarks $(BENCH_ARGS)

bench-quick: install $(STATIC_ROOT)/.collected
	$(PY) -m tests.benchmarks --quick $(BENCH_ARGS)

# Everything but the browser tests, for a quick loop while working.
test-fast: install
	$(PY) -m pytest -m "not browser"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) $(TOOLS) staticfiles .pytest_cache .mypy_cache .ruff_cache
