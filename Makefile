# MangaAssist Console — the two commands of the Quick start, plus benchmarks.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: run test bench bootstrap bootstrap-dev check

# "ready in" counts from the command's start, the bootstrap included (devtools/run.py): ":=" takes
# the time when make reads this line, before any prerequisite runs.
run: export MANGAASSIST_RUN_STARTED := $(shell date +%s.%N)
run: bootstrap
	$(PY) -m devtools.run

# The test session starts its own servers; these unusable defaults make any connection made
# before it switches settings fail loudly instead of reaching a server already on the machine.
test: bootstrap-dev
	REDIS_URL=redis://127.0.0.1:9/0 CELERY_BROKER_URL=redis://127.0.0.1:9/1 DYNAMODB_ENDPOINT=http://127.0.0.1:9 \
	DAX_ENDPOINTS= $(PY) -m pytest $(PYTEST_ARGS)

bench: bootstrap-dev
	$(PY) -m bench $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(QUICK),--quick)

bootstrap:
	@bash devtools/bootstrap.sh

bootstrap-dev:
	@WITH_BROWSER=1 WITH_PROMTOOL=1 REQUIREMENTS=requirements-dev.txt bash devtools/bootstrap.sh

# Production settings must pass Django's deployment checks.
check: bootstrap
	MANGAASSIST_ENV=production DJANGO_SECRET_KEY=$$(head -c 48 /dev/urandom | base64) \
	DJANGO_ALLOWED_HOSTS=console.example.com PROMETHEUS_MULTIPROC_DIR=$$(mktemp -d) SEARCH_ENGINE=postgres SEARCH_DATABASE_URL=postgresql://search.example.com/mangaassist \
	$(PY) manage.py check --deploy --fail-level WARNING
