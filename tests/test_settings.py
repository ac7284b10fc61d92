import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args, **env):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MANGAASSIST_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=base | env, capture_output=True, text=True)


def test_production_settings_pass_the_deployment_checks():
    result = _manage("check", "--deploy", "--fail-level", "WARNING", MANGAASSIST_ENV="production",
                     DJANGO_SECRET_KEY="x" * 20 + "production-secret-key-for-the-check-0123456789",
                     DJANGO_ALLOWED_HOSTS="console.example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", MANGAASSIST_ENV="production", DJANGO_ALLOWED_HOSTS="console.example.com")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("name, value, message", [
    ("DYNAMODB_DAY_SHARDS", "eight", "is not an integer"),
    ("DYNAMODB_DAY_SHARDS", "0", "must be >= 1"),
    ("DAX_WRITE_THROUGH", "maybe", "is not a boolean"),
    ("MANGAASSIST_ENV", "staging", "must be 'local' or 'production'"),
])
def test_bad_environment_values_fail_loudly(name, value, message):
    result = _manage("check", **{name: value})
    assert result.returncode != 0
    assert name in result.stderr and message in result.stderr
