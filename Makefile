# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_WORKERS ?= 2

.PHONY: demo test test-postgres lint venv system-packages package-tools packages bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[collector,dev]'
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

# On PostgreSQL (a private server per worker, from Debian's binaries, each test's
# database copied from one migrated once), `make test` runs the collector's feature tests
# again: PG_TESTS, the collector's folders and the files of the mixed ones that open its
# database. `make test-postgres` runs that pass alone; PG_TESTS chooses others, e.g.
# every collector folder:
#   make test-postgres PG_TESTS="tests/health tests/cameras tests/backups tests/contracts \
#     tests/notify tests/portal tests/security tests/faults"
PG_TESTS ?= tests/contracts tests/notify tests/security \
	tests/health/test_api.py tests/health/test_enrollment.py \
	tests/health/test_migrations.py tests/health/test_postgres_backend.py \
	tests/health/test_serve_errors.py tests/health/test_health_probes.py \
	tests/cameras/test_collector_cameras.py tests/cameras/test_cameras_end_to_end.py \
	tests/backups/test_uploads.py tests/backups/test_counting.py \
	tests/backups/test_maintenance.py tests/backups/test_policy.py tests/backups/test_wire.py \
	tests/backups/test_staging.py \
	tests/portal/test_accounts.py tests/portal/test_pages.py tests/portal/test_tenancy_walk.py \
	tests/end_to_end/test_several_processes.py tests/end_to_end/test_one_of_two_killed.py

# The machine `make test` runs on has every tool the tests use (the targets above install
# them): a test that would skip for a missing tool elsewhere fails here (tests/machine.py).
test: $(STAMP) system-packages package-tools lint
	VIGIL_REQUIRE_TOOLS=1 $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile
	VIGIL_REQUIRE_TOOLS=1 VIGIL_TEST_DB=postgresql $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile \
		-m 'not sqlite_only' $(PG_TESTS)

test-postgres: $(STAMP) system-packages
	VIGIL_TEST_DB=postgresql $(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist loadfile \
		-m 'not sqlite_only' $(PG_TESTS)

bench: $(STAMP) system-packages
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/probe.py
	$(BIN)/python bench/contracts.py
	$(BIN)/python bench/backup.py
	$(BIN)/python bench/fleet_sim.py

clean:
	rm -rf $(VENV) demo-data .pytest_cache .ruff_cache .cache dist
