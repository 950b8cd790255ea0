# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: demo test lint venv system-packages package-tools packages bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian tools the tests use as a customer would: stock `age`, `zstd`, `tar`; PostgreSQL.
system-packages:
	@bash packaging/dev/system-packages.sh

# Debian tools that build and check the .deb files: dh-virtualenv, debhelper, lintian, mmdebstrap.
package-tools:
	@bash packaging/dev/package-tools.sh

# dist/vigil-agent_<version>_<arch>.deb and dist/vigil-collector_<version>_<arch>.deb.
packages: package-tools
	bash packaging/build-debs.sh

demo: $(STAMP)
	$(BIN)/python packaging/demo.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The collector-side folders run a second time on PostgreSQL (a private server per worker).
PG_TESTS ?= tests/health tests/security tests/contracts tests/faults

test: $(STAMP) system-packages package-tools lint
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile
	VIGIL_TEST_DB=postgresql $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile $(PG_TESTS)

bench: $(STAMP) system-packages
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/probe.py
	$(BIN)/python bench/contracts.py
	$(BIN)/python bench/backup.py

clean:
	rm -rf $(VENV) demo-data .pytest_cache .ruff_cache .cache dist
