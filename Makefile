# eventlog: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test fuzz bench up down status install services lint clean

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

# Brokers the tests use: Redis (also started privately by the fixtures if absent)
# and RabbitMQ (started here if installed but not running, installed if missing).
services:
	@bash deploy/services.sh

up: install
	$(PY) -m deploy.stack up

down:
	@test -x $(PY) && $(PY) -m deploy.stack down || true

status:
	$(PY) -m deploy.stack status

demo: up
	$(PY) -m loadtest.traffic --visits 5000

test: install services
	$(PY) -m pytest

# The property tests with fresh random examples (make test replays a fixed set).
fuzz: install
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/django_hook -k hostile

bench: install services
	$(PY) -m loadtest.bench
	$(PY) -m loadtest.beacon_bench
	$(PY) -m loadtest.dashboard_bench
	$(PY) -m loadtest.site_bench

lint: install
	$(VENV)/bin/ruff check .

clean: down
	rm -rf var
