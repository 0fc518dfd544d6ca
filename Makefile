# The two commands that do everything: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# One address for every process of `make run` (honcho gives worker and beat other PORTs):
# links and the simulated provider's webhooks must reach the web, wherever it listens.
SITE_URL ?= http://127.0.0.1:$(PORT)
export PORT SITE_URL
# Settings default to DEBUG off (fail-safe); `make run` is development: DEBUG on unless the
# environment says otherwise. Only the run targets get it (the tests set their own).
DEV := env DEBUG=$${DEBUG:-true}

.PHONY: run test lint format bench chaos install install-dev migrate demo clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

migrate: install
	@mkdir -p var/celery/queue var/media
	$(DEV) $(BIN)/python manage.py migrate --noinput -v 0

demo: migrate
	$(DEV) $(BIN)/python manage.py seed_demo

# collectstatic only when a static file or the installed packages changed: compressing the
# ~500 files (gzip + brotli) takes about a minute on 2 cores.
staticfiles/.collected: $(shell find static -type f 2>/dev/null) $(VENV)/.installed
	$(DEV) $(BIN)/python manage.py collectstatic --noinput -v 0
	touch $@

## make run: web + worker + beat on embedded defaults (SQLite, filesystem broker) or on
## DATABASE_URL / REDIS_URL when set. Ctrl-C stops everything.
run: demo staticfiles/.collected
	@echo ""
	@echo "  Shop:      $(SITE_URL)/"
	@echo "  Admin:     $(SITE_URL)/admin/   (admin / admin-pass)"
	@echo "  Shopper:   shopper / shopper-pass"
	@echo "  Staff:     staff / staff-pass   (staff role, not a superuser)"
	@echo "  API docs:  $(SITE_URL)/api/v1/docs/"
	@echo "  Health:    $(SITE_URL)/health/"
	@echo ""
	exec $(DEV) $(BIN)/honcho start -f Procfile

# axe-core for the accessibility browser tests (package.json; node_modules is not committed).
node_modules/.installed: package.json package-lock.json
	@command -v npm >/dev/null || { echo "npm is needed for the browser tests' axe-core: apt-get install npm"; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

## make test: the whole suite against PostgreSQL and Redis (DATABASE_URL / REDIS_URL to override).
test: install-dev node_modules/.installed
	@$(BIN)/python scripts/check_services.py
	$(BIN)/python -m pytest --create-db $(PYTEST_ARGS)

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# As the production image: static files collected (WhiteNoise serves them from STATIC_ROOT).
bench: install-dev staticfiles/.collected
	@$(BIN)/python scripts/check_services.py
	$(BIN)/python bench/run.py $(BENCH_ARGS)

chaos: install-dev staticfiles/.collected
	@$(BIN)/python scripts/check_services.py
	$(BIN)/python bench/chaos.py $(CHAOS_ARGS)

clean:
	rm -rf var staticfiles .pytest_cache .mypy_cache .ruff_cache
