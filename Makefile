# Outpost — the two commands a newcomer needs:
#   make run    set up everything and serve the platform on http://127.0.0.1:8000
#   make test   set up everything and run the whole test suite
# Without DATABASE_URL / REDIS_URL both use an embedded PostgreSQL and Redis
# (pip wheels, data under .local/). With them set, those servers are used.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run test lint format migrate bench clean-local stop-local

$(VENV)/.runtime: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -r requirements.txt
	@touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt $(VENV)/.runtime
	$(PIP) install -r requirements-dev.txt
	@touch $@

migrate: $(VENV)/.runtime
	$(PY) manage.py migrate_schemas --shared --noinput -v 1
	$(PY) manage.py migrate_tenants

run: migrate
	$(PY) manage.py demo
	$(PY) manage.py runall --addr $(HOST):$(PORT)

test: $(VENV)/.dev
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV)/.dev
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: $(VENV)/.dev
	$(PY) bench/run_all.py

stop-local:
	$(PY) -m config.devservices stop
