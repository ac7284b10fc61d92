import os
import subprocess
import tempfile
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MANGAASSIST_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=base | env, capture_output=True, text=True)


PRODUCTION = {"MANGAASSIST_ENV": "production", "DJANGO_ALLOWED_HOSTS": "console.example.com",
              "DJANGO_SECRET_KEY": "x" * 20 + "production-secret-key-for-the-check-0123456789",
              "SEARCH_ENGINE": "postgres", "SEARCH_DATABASE_URL": "postgresql://search.example.com/mangaassist",
              "PROMETHEUS_MULTIPROC_DIR": tempfile.mkdtemp(prefix="metrics-check-")}


def test_production_settings_pass_the_deployment_checks():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_a_production_search_index_in_a_local_file_is_warned_about():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "SEARCH_ENGINE": "sqlite"})
    assert result.returncode != 0 and "mangaassist.W001" in result.stderr + result.stdout


def test_production_metrics_without_the_multiprocess_directory_are_warned_about():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **{**PRODUCTION, "PROMETHEUS_MULTIPROC_DIR": ""})
    assert result.returncode != 0 and "mangaassist.W002" in result.stderr + result.stdout
    # Metrics off: nothing to aggregate, nothing to warn about.
    result = _manage("check", "--deploy", "--fail-level", "WARNING",
                     **{**PRODUCTION, "PROMETHEUS_MULTIPROC_DIR": "", "METRICS_ENABLED": "0"})
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_postgres_search_engine_needs_its_url():
    result = _manage("check", **{**PRODUCTION, "SEARCH_DATABASE_URL": ""})
    assert result.returncode != 0 and "SEARCH_DATABASE_URL" in result.stderr


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", MANGAASSIST_ENV="production", DJANGO_ALLOWED_HOSTS="console.example.com")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


OLD_CONSTANT_DEV_KEY = "local-dev-only-secret-key-not-for-production-use-0123456789"
PRINT_KEY = ["shell", "--no-imports", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"]


def _local_key(local_dir) -> str:
    result = _manage(*PRINT_KEY, MANGAASSIST_LOCAL_DIR=str(local_dir))
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_local_secret_key_is_generated_once_per_checkout(tmp_path):
    first = _local_key(tmp_path)
    stored = tmp_path / "django-secret-key"
    assert stored.read_text().strip() == first
    assert stored.stat().st_mode & 0o077 == 0  # readable by its owner only
    assert len(first) >= 50 and first != OLD_CONSTANT_DEV_KEY
    assert _local_key(tmp_path) == first  # read back afterwards, not regenerated
    other = tmp_path / "other-checkout"
    assert _local_key(other) != first


def test_processes_starting_together_agree_on_the_generated_key(tmp_path):
    # `make run` starts gunicorn's workers and Celery at once on a fresh checkout: one key must win.
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MANGAASSIST_"))}
    base["MANGAASSIST_LOCAL_DIR"] = str(tmp_path)
    code = ("import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mangaassist.settings'); "
            "from django.conf import settings; print(settings.SECRET_KEY)")
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=base, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    keys = set()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        keys.add(out.strip())
    assert keys == {(tmp_path / "django-secret-key").read_text().strip()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["django-secret-key"]  # no temporary files left


def test_production_ignores_the_local_key_file(tmp_path):
    _local_key(tmp_path)
    result = _manage("check", MANGAASSIST_ENV="production", DJANGO_ALLOWED_HOSTS="console.example.com",
                     MANGAASSIST_LOCAL_DIR=str(tmp_path))
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("key", ["short-production-key", "y" * 49, "ab" * 30])
def test_production_refuses_a_weak_secret_key_at_start(key):
    result = _manage("check", MANGAASSIST_ENV="production", DJANGO_ALLOWED_HOSTS="console.example.com",
                     DJANGO_SECRET_KEY=key)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr
    assert key not in result.stderr  # the refusal does not print the secret


@pytest.mark.parametrize("name, value, message", [
    ("DYNAMODB_DAY_SHARDS", "eight", "is not an integer"),
    ("DYNAMODB_DAY_SHARDS", "0", "must be >= 1"),
    ("DAX_WRITE_THROUGH", "maybe", "is not a boolean"),
    ("DAX_CLIENT_TUNING", "sometimes", "is not a boolean"),
    ("MANGAASSIST_ENV", "staging", "must be 'local' or 'production'"),
    ("LOGIN_FAILURE_LIMIT", "0", "must be >= 1"),
    ("LOGIN_COOLOFF_MINUTES", "a while", "is not an integer"),
    ("LOGIN_PROXY_COUNT", "-1", "must be >= 0"),
])
def test_bad_environment_values_fail_loudly(name, value, message):
    result = _manage("check", **{name: value})
    assert result.returncode != 0
    assert name in result.stderr and message in result.stderr


@pytest.mark.parametrize("scheme", ["Token", "Bearer", "Basic", "bearer"])
def test_no_log_line_ever_contains_the_authorization_value(client, db, caplog, settings, scheme):
    """django-ninja's HttpBearer logs the whole header ("Unexpected auth - 'Token ma_…'") when
    DEBUG is on and the scheme is not Bearer; the API's auth must never hand a credential to a log."""
    import logging

    from sessions_app.services.api_keys import api_key_create

    settings.DEBUG = True
    # A read key on a write endpoint: authenticated, then refused (403) without touching DynamoDB.
    key = api_key_create(name="leak-check", scope="read")[1]
    caplog.set_level(logging.DEBUG)
    for value in (f"{scheme} {key}", f"{scheme} {key} trailing", f"{scheme}  {key}", key):
        response = client.post("/api/v1/sessions/nope/close", headers={"Authorization": value})
        assert response.status_code in (401, 403), response.content
    assert caplog.records, "nothing was logged at DEBUG: the check would prove nothing"
    # key[:12] is the public prefix the admin shows; what follows it is the secret.
    leaked = [r.getMessage() for r in caplog.records if key[12:] in r.getMessage()]
    assert not leaked, leaked
