"""/healthz and /readyz against real dependencies: the session's DynamoDB Local and Redis, the
local DAX node, and closed or silent ports standing in for the ones that are down."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.test import Client

from devtools import procs
from sessions_app import dynamo, selectors
from sessions_app.exceptions import SessionNotFound
from sessions_app.selectors.readiness import readiness_cache_clear
from tests.fixtures.dynamodb_calls import dynamodb_calls


@pytest.fixture(autouse=True)
def fresh_readiness(settings):
    # A starved test box must not turn a slow answer into "down"; the hung-dependency test sets
    # its own short deadline.
    settings.READYZ_TIMEOUT_SECONDS = 10.0
    # The result is cached per process; every test starts (and leaves) without one.
    readiness_cache_clear()
    yield
    readiness_cache_clear()


def _closed_url(scheme: str, path: str = "") -> str:
    return f"{scheme}://127.0.0.1:{procs.free_port()}{path}"


@contextmanager
def dynamodb_settings(settings, **values) -> Iterator[None]:
    """DynamoDB settings for the block, restored at its end: ``ddb``'s teardown (deleting the
    table) runs before the ``settings`` fixture restores anything, and must reach DynamoDB."""
    previous = {name: getattr(settings, name) for name in values}
    for name, value in values.items():
        setattr(settings, name, value)
    dynamo.reset_connections()  # connections are built with the endpoint's timeouts and retries
    try:
        yield
    finally:
        for name, value in previous.items():
            setattr(settings, name, value)
        dynamo.reset_connections()


@pytest.fixture
def dynamodb_down(ddb, settings):
    # No retries: the refusal itself, not botocore's backoff (the deadline would cut that).
    with dynamodb_settings(settings, DYNAMODB_ENDPOINT=_closed_url("http"), DYNAMODB_MAX_RETRIES=0):
        yield


@pytest.fixture
def redis_down(settings):
    # As tests/live/test_sse.py does: replacing CACHES makes Django drop its cache clients.
    default = {**settings.CACHES["default"], "LOCATION": _closed_url("redis", "/0")}
    settings.CACHES = {**settings.CACHES, "default": default}


@pytest.fixture
def broker_down(settings):
    settings.CELERY_BROKER_URL = f"redis://probe:s3cret-pw@127.0.0.1:{procs.free_port()}/1"


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port whose kernel accepts connections that nobody ever answers (a hung server)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()  # resets the waiting connections, so the hung check's thread ends


def _ready_body(response) -> dict:
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body["checks"]) == {"dynamodb", "redis", "dax", "broker"}
    for check in body["checks"].values():
        assert isinstance(check["ms"], float) and "error" in check
    return body


# --- /healthz -------------------------------------------------------------------------------------

def test_healthz_is_ok_without_touching_any_dependency(client, dynamodb_down, redis_down, broker_down):
    # Every dependency is down: a liveness probe that failed now would get healthy processes restarted.
    with dynamodb_calls() as calls:
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"
    assert calls == []


def test_probes_need_no_login_while_the_console_does(client, ddb):
    assert client.get("/").status_code == 302  # the console sends anonymous visitors to log in
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_works_and_other_methods_get_a_json_405(client, ddb, path):
    head = client.head(path)
    assert head.status_code == 200 and head["Cache-Control"] == "no-store"
    for send in (client.post, client.put, client.delete):
        response = send(path)
        assert response.status_code == 405
        assert response["Allow"] == "GET, HEAD"
        assert response.json()["error"]["code"] == "method_not_allowed"


def test_post_gets_the_405_not_the_csrf_page(ddb):
    response = Client(enforce_csrf_checks=True).post("/readyz")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"


# --- /readyz --------------------------------------------------------------------------------------

def test_everything_up_is_ready_with_dax_disabled(client, ddb, forbid_scans):
    with dynamodb_calls(ddb) as calls:
        response = client.get("/readyz")
    assert response.status_code == 200
    body = _ready_body(response)
    assert body["status"] == "ready"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "dynamodb": "ok", "redis": "ok", "dax": "disabled", "broker": "ok",
    }
    assert all(check["error"] is None for check in body["checks"].values())
    assert calls == ["GetItem"]  # one cheap read, never a Scan


def test_dynamodb_down_is_unavailable_503(client, ddb, dynamodb_down):
    response = client.get("/readyz")
    assert response.status_code == 503
    body = _ready_body(response)
    assert body["status"] == "unavailable"
    dynamodb = body["checks"]["dynamodb"]
    assert dynamodb["status"] == "down" and dynamodb["error"]
    # The other checks are still reported, so the operator sees everything at once.
    assert body["checks"]["redis"]["status"] == "ok"


def test_a_missing_table_counts_as_down(client, ddb, settings):
    settings.DYNAMODB_TABLE = ddb + "-missing"
    response = client.get("/readyz")
    assert response.status_code == 503
    dynamodb = response.json()["checks"]["dynamodb"]
    assert dynamodb["status"] == "down" and "ResourceNotFound" in dynamodb["error"]


def test_hung_dynamodb_is_bounded_by_the_deadline(client, ddb, settings):
    # The only way to answer while DynamoDB never replies is the round's deadline.
    settings.READYZ_TIMEOUT_SECONDS = 0.3
    with silent_listener() as port, dynamodb_settings(
        settings, DYNAMODB_ENDPOINT=f"http://127.0.0.1:{port}", DYNAMODB_READ_TIMEOUT=60.0, DYNAMODB_MAX_RETRIES=0,
    ):
        response = client.get("/readyz")
    assert response.status_code == 503
    dynamodb = response.json()["checks"]["dynamodb"]
    assert dynamodb == {**dynamodb, "status": "down", "error": "no answer within 0.3 s"}


def test_redis_down_is_degraded_but_ready(client, ddb, redis_down):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = _ready_body(response)
    assert body["status"] == "degraded"
    assert body["checks"]["redis"]["status"] == "down" and body["checks"]["redis"]["error"]
    assert body["checks"]["dynamodb"]["status"] == "ok"
    assert body["checks"]["broker"]["status"] == "ok"  # the broker is another server here


def test_broker_down_is_degraded_and_its_password_is_not_shown(client, ddb, broker_down):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = _ready_body(response)
    assert body["status"] == "degraded"
    assert body["checks"]["broker"]["status"] == "down" and body["checks"]["broker"]["error"]
    assert body["checks"]["redis"]["status"] == "ok"
    assert "s3cret-pw" not in response.content.decode()


def test_everything_but_dynamodb_down_is_still_ready(client, ddb, redis_down, broker_down, settings):
    settings.DAX_ENDPOINTS = [f"127.0.0.1:{procs.free_port()}"]
    dynamo.reset_connections()
    response = client.get("/readyz")
    assert response.status_code == 200
    assert {name: check["status"] for name, check in response.json()["checks"].items()} == {
        "dynamodb": "ok", "redis": "down", "dax": "degraded", "broker": "down",
    }


# --- DAX --------------------------------------------------------------------------------------------

def test_dax_node_up_is_ok(client, ddb, dax_node, settings):
    settings.DAX_ENDPOINTS = [dax_node["endpoint"]]
    dynamo.reset_connections()
    body = client.get("/readyz").json()
    assert body["status"] == "ready"
    assert body["checks"]["dax"] == {**body["checks"]["dax"], "status": "ok", "breaker": "closed", "error": None}


def test_unreachable_dax_is_degraded_and_the_dynamodb_check_bypasses_it(client, ddb, settings):
    settings.DAX_ENDPOINTS = [f"127.0.0.1:{procs.free_port()}"]
    settings.DAX_BREAKER_FAILURES = 1  # one read sent to this dead DAX would open the breaker
    dynamo.reset_connections()
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["dax"] == {**body["checks"]["dax"], "status": "degraded", "breaker": "closed"}
    assert body["checks"]["dax"]["error"]  # found by the TCP connect, not by a failed read
    assert body["checks"]["dynamodb"]["status"] == "ok"
    # The DynamoDB check was a consistent read, straight to DynamoDB: it never tried DAX.
    assert dynamo.dax_breaker_state() == "closed"


def test_open_dax_breaker_is_degraded(client, ddb, settings):
    settings.DAX_ENDPOINTS = [f"127.0.0.1:{procs.free_port()}"]
    settings.DAX_BREAKER_FAILURES = 1
    settings.DAX_BREAKER_RESET_SECONDS = 3600.0  # stays open, never half-open, during the test
    dynamo.reset_connections()
    with pytest.raises(SessionNotFound):  # an eventually consistent read: DAX fails, DynamoDB answers
        selectors.session_get(session_id="nobody")
    assert dynamo.dax_breaker_state() == "open"
    body = client.get("/readyz").json()
    assert body["status"] == "degraded"
    assert body["checks"]["dax"]["status"] == "degraded" and body["checks"]["dax"]["breaker"] == "open"


# --- cost -------------------------------------------------------------------------------------------

def test_probes_within_the_cache_window_share_one_round(client, ddb, settings):
    settings.READYZ_CACHE_SECONDS = 3600.0
    with dynamodb_calls(ddb) as calls:
        first = client.get("/readyz").json()
        assert client.head("/readyz").status_code == 200
        assert client.get("/readyz").json() == first
    assert calls == ["GetItem"]


def test_without_a_cache_window_every_probe_checks(client, ddb, settings):
    settings.READYZ_CACHE_SECONDS = 0.0
    with dynamodb_calls(ddb) as calls:
        for _ in range(3):
            assert client.get("/readyz").status_code == 200
    assert calls == ["GetItem"] * 3


def test_a_recovered_dependency_is_seen_after_the_cache_is_cleared(client, ddb, settings):
    settings.READYZ_CACHE_SECONDS = 3600.0
    original = settings.CELERY_BROKER_URL
    settings.CELERY_BROKER_URL = _closed_url("redis", "/1")
    assert client.get("/readyz").json()["status"] == "degraded"
    settings.CELERY_BROKER_URL = original
    assert client.get("/readyz").json()["status"] == "degraded"  # still the cached round
    readiness_cache_clear()
    assert client.get("/readyz").json()["status"] == "ready"


def test_a_load_balancer_probe_needs_no_allowed_host_and_no_https(client, settings):
    """An ALB health check: the target's own address as Host, plain HTTP, production's redirect on."""
    settings.ALLOWED_HOSTS = ["console.example.com"]
    settings.SECURE_SSL_REDIRECT = True
    probe = client.get("/healthz", HTTP_HOST="10.0.3.17:8000")
    assert probe.status_code == 200 and probe.json() == {"status": "ok"}
    assert client.get("/readyz", HTTP_HOST="10.0.3.17:8000").status_code in (200, 503)
    # Every other path keeps the host check and the redirect.
    assert client.get("/accounts/login/", HTTP_HOST="10.0.3.17:8000").status_code == 400
    assert client.get("/accounts/login/", HTTP_HOST="console.example.com").status_code == 301
