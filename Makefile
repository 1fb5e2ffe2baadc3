# The two commands: `make run` and `make test`. Both set up what they need themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | md5sum | cut -c1-12)

# make test runs against real PostgreSQL and Redis (override these to point elsewhere).
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/matchplatform
TEST_REDIS_URL ?= redis://127.0.0.1:6379/15
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: run dev test install chromium services testdb lint typecheck pytest bench-runs bench-queue bench-proposals bench-feed bench-seed bench-flags bench-discovery clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

# Browser tests drive Debian's Chromium through Playwright (no browser download).
chromium:
	@command -v chromium >/dev/null || { \
		echo "installing Debian's chromium for the browser tests"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; }

# Start PostgreSQL and Redis if they are installed here but not running.
services:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
		command -v pg_ctlcluster >/dev/null && pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start; \
		sleep 2; pg_isready -h 127.0.0.1 -p 5432; }
	@redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 || { \
		redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; sleep 1; \
		redis-cli -h 127.0.0.1 -p 6379 ping; }

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --if-empty
	$(PY) manage.py seed_members --if-empty
	$(PY) manage.py seed_discovery
	$(PY) manage.py demo_credentials
	@bash bin/run-all

# make run with Django's development server, which restarts itself when the code changes.
dev: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py seed_demo --if-empty
	$(PY) manage.py seed_members --if-empty
	$(PY) manage.py seed_discovery
	$(PY) manage.py demo_credentials
	@WEB_SERVER=runserver bash bin/run-all

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install chromium services
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_REDIS_URL) CACHE_URL=$(TEST_REDIS_URL) \
		$(VENV)/bin/pytest

# The database named in TEST_DATABASE_URL must exist for check and makemigrations --check
# (the test runner itself works in test_<name>).
testdb: install services
	@$(PY) -c "import sys, psycopg; from urllib.parse import urlsplit; \
	u = urlsplit(sys.argv[1]); name = u.path.lstrip('/'); \
	c = psycopg.connect(sys.argv[1].replace('/' + name, '/postgres', 1), autocommit=True); \
	c.execute('SELECT 1 FROM pg_database WHERE datname = %s', (name,)).fetchone() or c.execute(f'CREATE DATABASE \"{name}\"')" \
	"$(TEST_DATABASE_URL)"

test: install chromium services testdb lint typecheck
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) manage.py check
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) manage.py makemigrations --check --dry-run
	DATABASE_URL=$(TEST_DATABASE_URL) CELERY_BROKER_URL=$(TEST_REDIS_URL) CACHE_URL=$(TEST_REDIS_URL) \
		$(VENV)/bin/pytest

# Each bench makes <name>_bench_<what> next to TEST_DATABASE_URL's database and drops it; set
# BENCH_REDIS_URL to give the Celery benches a Redis database of your choosing (each has its own
# default: runs 11, queue 14).
BENCH_REDIS_ARG = $(if $(BENCH_REDIS_URL),--redis-url $(BENCH_REDIS_URL))

bench-runs: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m bench.runs $(BENCH_REDIS_ARG)

bench-queue: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m bench.queue $(BENCH_REDIS_ARG)

bench-proposals: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m bench.proposals

bench-feed: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m bench.feed

bench-seed: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m bench.seed

bench-flags: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m bench.flags $(if $(BENCH_REDIS_URL),--cache-url $(BENCH_REDIS_URL))

# Keeps its seeded database (10M decisions) for the next run: --drop removes it, --reseed rebuilds it.
bench-discovery: install services
	DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m bench.discovery $(if $(BENCH_REDIS_URL),--cache-url $(BENCH_REDIS_URL))

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
