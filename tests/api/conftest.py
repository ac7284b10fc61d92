"""Fixtures for the HTTP API: real API keys in the test database, a client that sends them,
the fresh DynamoDB table (``ddb``) and the flushed test Redis (``redis_client``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.core.servers.basehttp import ThreadedWSGIServer
from django.db import connections
from django.test import Client
from django.test.testcases import LiveServerThread, _StaticFilesHandler

from sessions_app.services.api_keys import api_key_create
from tests.realtime.conftest import OwnRedis, own_redis  # noqa: F401  (re-exported fixture)

API = "/api/v1"


@dataclass
class Api:
    """A Django test client that talks JSON to /api/v1 with one API key."""

    client: Client
    key: str | None

    def _headers(self, key: str | None) -> dict[str, str]:
        key = self.key if key is ... else key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def get(self, path: str, *, key=..., **params):
        return self.client.get(API + path, params, headers=self._headers(key))

    def post(self, path: str, body=None, *, key=..., raw: bytes | str | None = None):
        data = raw if raw is not None else (json.dumps(body) if body is not None else "")
        return self.client.post(API + path, data, content_type="application/json", headers=self._headers(key))

    def put(self, path: str, body=None, *, key=...):
        return self.client.put(API + path, json.dumps(body), content_type="application/json", headers=self._headers(key))

    def delete(self, path: str, *, key=...):
        return self.client.delete(API + path, headers=self._headers(key))


@pytest.fixture
def write_key(db) -> str:
    return api_key_create(name="bot-runtime", scope="write")[1]


@pytest.fixture
def read_key(db) -> str:
    return api_key_create(name="analytics", scope="read")[1]


@pytest.fixture
def api(ddb, redis_client, write_key) -> Iterator[Api]:
    """Authenticated with a write key (which also grants read)."""
    yield Api(client=Client(), key=write_key)


def start_session(api: Api, **fields) -> str:
    body = {"customer_id": "cust-1", "channel": "web", **fields}
    response = api.post("/sessions", body)
    assert response.status_code == 201, response.content
    return response.json()["session_id"]


def privacy_delete(session_id: str) -> None:
    """Erase the session as a Supervisor's privacy delete does (needs the ``db`` fixture)."""
    from django.contrib.auth import get_user_model

    from sessions_app.services.privacy import privacy_delete_execute

    actor, _ = get_user_model().objects.get_or_create(username="dpo", defaults={"is_staff": True})
    assert privacy_delete_execute(actor=actor, session_id=session_id, confirm=session_id).complete


def error_of(response) -> dict:
    """The API's one error shape; fails the test if the body is anything else."""
    assert response["Content-Type"].startswith("application/json"), response.content
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message", "field"} <= set(body["error"]), body
    return body["error"]


class _DeepBacklogServer(ThreadedWSGIServer):
    # Django's WSGIServer listens with a backlog of 10: fifty clients connecting at once
    # overflow it and the kernel resets connections before a request is even read, which is
    # the test server's limit, not the API's. A production server (gunicorn) uses 2048.
    request_queue_size = 256


class _LiveServerThread(LiveServerThread):
    server_class = _DeepBacklogServer


@pytest.fixture
def live_api(transactional_db, ddb, redis_client) -> Iterator[str]:
    """pytest-django's ``live_server``, but with a listen backlog that fits a burst of 50
    concurrent connections. Same construction as pytest-django's: the in-memory SQLite test
    database is shared with the server's threads. Yields the base URL of /api/v1."""
    overrides = {}
    for conn in connections.all():
        if conn.vendor == "sqlite" and conn.is_in_memory_db():
            overrides[conn.alias] = conn
            conn.inc_thread_sharing()
    thread = _LiveServerThread("127.0.0.1", _StaticFilesHandler, connections_override=overrides, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    try:
        yield f"http://127.0.0.1:{thread.port}{API}"
    finally:
        thread.terminate()
        for conn in overrides.values():
            conn.dec_thread_sharing()
