# The two commands a newcomer needs:
#   make run    set up and start synthaug on the embedded default (SQLite, no services)
#   make test   set up and run the whole test suite against PostgreSQL and Redis
# Everything else here is what those two need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PORT   ?= 8000

# The test suite runs on the real services: PostgreSQL (pytest-django creates and drops
# its own test_<name> database) and Redis.
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/test
TEST_BROKER_URL   ?= redis://127.0.0.1:6379/15

.PHONY: install run test lint bench services browser

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), "synthaug needs Python 3.12+ (found " + sys.version.split()[0] + ")"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo
	@echo
	@echo "  synthaug is starting at http://127.0.0.1:$(PORT)/  (Ctrl-C stops web and worker)"
	@echo
	PATH="$(CURDIR)/$(BIN):$$PATH" DEBUG=true SYNTHAUG_PORT=$(PORT) $(BIN)/honcho -f Procfile start

services:
	bash .ci/services

browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install services browser lint
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_BROKER_URL) \
	SYNTHAUG_VAR_DIR=$(CURDIR)/var/test \
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(BIN)/python bench/run.py $(BENCH_ARGS)
