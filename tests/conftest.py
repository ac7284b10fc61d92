"""Test infrastructure: a real DynamoDB Local and a real redis-server, on free ports, per session.

Both are started by this session and stopped at its end; nothing uses the ports `make run` uses.
Django settings are already imported when fixtures run, so the session fixture (autouse: it runs
before any test can open a connection) points the settings — and the environment, for
subprocesses such as Celery workers — at the new servers.
"""

from __future__ import annotations

import os
import uuid

import pytest
from django.conf import settings

from devtools import procs

# Fixtures some test packages share: Celery on the test broker, the DAX node and its read paths,
# staff users for the console and the admin.
pytest_plugins = ["tests.fixtures.celery_workers", "tests.fixtures.read_paths", "tests.fixtures.staff", "tests.fixtures.postgres"]


@pytest.fixture(scope="session", autouse=True)
def infra(tmp_path_factory):
    logs = tmp_path_factory.mktemp("infra-logs")
    ddb_port, redis_port = procs.free_port(), procs.free_port()
    ddb = procs.start_dynamodb_local(ddb_port, log=logs / "dynamodb.log")
    redis = procs.start_redis(redis_port, log=logs / "redis.log")
    endpoint = f"http://127.0.0.1:{ddb_port}"
    redis_url = f"redis://127.0.0.1:{redis_port}/0"
    broker_url = f"redis://127.0.0.1:{redis_port}/1"
    env = {
        "DYNAMODB_ENDPOINT": endpoint,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": broker_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "us-east-1",
        # The search index of this test session (workers and consumers in subprocesses share it).
        "SEARCH_ENGINE": "sqlite",
        "SEARCH_SQLITE_PATH": str(tmp_path_factory.mktemp("search") / "search.sqlite3"),
    }
    os.environ.update(env)
    settings.DYNAMODB_ENDPOINT = endpoint
    settings.REDIS_URL = redis_url
    settings.CELERY_BROKER_URL = broker_url
    settings.CACHES["default"]["LOCATION"] = redis_url
    settings.SEARCH_ENGINE, settings.SEARCH_SQLITE_PATH = env["SEARCH_ENGINE"], env["SEARCH_SQLITE_PATH"]
    _forget_cache_connections()
    info = {"search_sqlite_path": env["SEARCH_SQLITE_PATH"], "dynamodb_endpoint": endpoint, "redis_url": redis_url, "redis_port": redis_port, "broker_url": broker_url, "logs": logs}
    try:
        yield info
    finally:
        procs.stop(redis)
        procs.stop(ddb)


def _forget_cache_connections() -> None:
    """Drop cache clients built before the settings changed, so every later use (this process's
    django-redis client included) connects to the test servers, never the machine's own Redis."""
    from django.core.cache import caches

    caches.close_all()
    try:
        del caches["default"]
    except (AttributeError, KeyError):
        pass


@pytest.fixture
def redis_client(infra):
    """A raw redis-py client on the test server, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(infra["redis_url"])
    client.flushall()
    yield client
    client.flushall()
    client.close()


@pytest.fixture
def table_name(infra):
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ddb(infra, table_name, settings):
    """A fresh, empty session table on DynamoDB Local (direct, no DAX) for one test."""
    from sessions_app import dynamo
    from sessions_app.services import table_delete, table_ensure

    settings.DYNAMODB_TABLE = table_name
    settings.DYNAMODB_ENDPOINT = infra["dynamodb_endpoint"]
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()
    table_ensure(table_name=table_name)
    yield table_name
    table_delete(table_name=table_name)
    dynamo.reset_connections()


@pytest.fixture(autouse=True)
def forbid_scans():
    """Fail any test in which product code issues a DynamoDB Scan (staff pages must Query)."""
    from pynamodb.signals import pre_dynamodb_send, signals_available

    # Without blinker PynamoDB's signals do nothing, and this guard would pass every test.
    assert signals_available, "blinker is not installed: PynamoDB signals (the Scan guard) are off"
    scans = []

    def record(sender, operation_name, table_name, req_uuid):
        if operation_name == "Scan":
            scans.append(table_name)

    pre_dynamodb_send.connect(record)
    yield scans
    pre_dynamodb_send.disconnect(record)
    assert not scans, f"a Scan was issued on {scans}"
