# Meterline — the two commands: `make demo` (embedded, no services) and `make test` (real stack).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export DATABASE_URL_TEST ?= postgres://postgres@127.0.0.1:5432/meterline
export REDIS_URL_TEST ?= redis://127.0.0.1:6379/1

.PHONY: demo test lint pytest bench messages services install install-dev clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml clients/python/pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[dev]" -e "clients/python[test]"
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

# The zh_Hans catalogue is compiled by the build, never committed.
messages:
	$(BIN)/python manage.py compilemessages --ignore=.venv -v0

demo: install messages
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py migrate --noinput -v0
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py seed_demo
	@echo "Portal: http://127.0.0.1:8000  (API docs: http://127.0.0.1:8000/api/docs/)"
	env -u DATABASE_URL -u REDIS_URL $(BIN)/python manage.py runserver 127.0.0.1:8000

services:
	bin/ensure-services

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/mypy core tenants metering billing invoices config bench/run.py
	$(BIN)/mypy clients/python/src

pytest: install-dev messages services
	cd clients/python && ../../$(BIN)/python -m pytest -q -p no:django -p no:cacheprovider
	DATABASE_URL=$${DATABASE_URL:-$(DATABASE_URL_TEST)} REDIS_URL=$${REDIS_URL:-$(REDIS_URL_TEST)} \
		$(BIN)/pytest $(PYTEST_ARGS)

test: lint pytest

bench: install-dev messages services
	DATABASE_URL=$${DATABASE_URL:-$(DATABASE_URL_TEST)} REDIS_URL=$${REDIS_URL:-$(REDIS_URL_TEST)} \
		$(BIN)/python bench/run.py

# README screenshots from a running demo portal (`make demo` in another terminal).
screenshots: install-dev
	$(BIN)/python bin/screenshots.py

clean:
	rm -rf $(VENV) var
