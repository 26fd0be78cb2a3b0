# Development tasks. `make` = lint + test.
PY ?= .venv/bin/python

.PHONY: all install fix lint test demo bench
all: lint test

install:
	python3 -m venv .venv
	$(PY) -m pip install -e '.[dev]'

fix:
	$(PY) -m ruff check --fix pipeline index tests bench
	$(PY) -m ruff format pipeline index tests bench

lint:
	$(PY) -m ruff check pipeline index tests bench
	$(PY) -m mypy

test:
	$(PY) -m pytest

demo:
	.venv/bin/crawldex demo

bench:
	$(PY) bench/extract_bench.py
