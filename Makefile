# MangaAssist Console — the two commands of the Quick start, plus benchmarks.
SHELL := /bin/bash
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: run test bench bootstrap bootstrap-dev check

run: bootstrap
	$(PY) -m devtools.run

test: bootstrap-dev
	$(PY) -m pytest $(PYTEST_ARGS)

bench: bootstrap-dev
	$(PY) -m bench $(if $(SCENARIO),--scenario $(SCENARIO)) $(if $(QUICK),--quick)

bootstrap:
	@bash devtools/bootstrap.sh

bootstrap-dev:
	@WITH_BROWSER=1 REQUIREMENTS=requirements-dev.txt bash devtools/bootstrap.sh

# Production settings must pass Django's deployment checks.
check: bootstrap
	MANGAASSIST_ENV=production DJANGO_SECRET_KEY=$$(head -c 48 /dev/urandom | base64) \
	DJANGO_ALLOWED_HOSTS=console.example.com $(PY) manage.py check --deploy --fail-level WARNING
