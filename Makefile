# Two commands set up a fresh machine (see README): `make demo` and `make test`.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit stress generate clean bench bench-scale

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,redis,postgres,bench]'
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(BIN)/python -m keyshelf.demo

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests tools benchmarks examples
	$(BIN)/ruff format --check src tests tools benchmarks examples
	$(BIN)/python tools/async_to_sync.py --check

typecheck: $(VENV)/.dev
	$(BIN)/mypy

unit: $(VENV)/.dev
	$(BIN)/pytest -q

test: lint typecheck unit

# keyshelf against the libraries users would pick instead (docs/performance.md).
bench: $(VENV)/.dev
	$(BIN)/python -m benchmarks

# 10,000,000 keys in the SQLite backend: minutes and ~2 GB of disk.
bench-scale: $(VENV)/.dev
	$(BIN)/python -m benchmarks.scale

stress: $(VENV)/.dev
	KEYSHELF_HYPOTHESIS=explore $(BIN)/pytest -q -m stress -p no:cacheprovider

# Writes every sync twin (sorted and formatted by ruff inside the generator).
generate: $(VENV)/.dev
	$(BIN)/python tools/async_to_sync.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
