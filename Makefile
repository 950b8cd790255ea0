# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: demo test lint venv system-packages bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian tools the tests use as a customer would: stock `age`, `zstd`, `tar`; PostgreSQL.
system-packages:
	@bash packaging/dev/system-packages.sh

demo: $(STAMP)
	$(BIN)/python packaging/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: $(STAMP) system-packages lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile

bench: $(STAMP) system-packages
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/probe.py
	$(BIN)/python bench/contracts.py
	$(BIN)/python bench/backup.py

clean:
	rm -rf $(VENV) demo-data .pytest_cache .ruff_cache
