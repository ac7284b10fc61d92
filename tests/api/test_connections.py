"""PUT/GET/DELETE /connections/{id}: the WebSocket mapping, kept only in Redis."""

from __future__ import annotations

import pytest

from sessions_app.realtime import connection_get, connections_for_session, realtime_keys_for_session

from .conftest import error_of, privacy_delete, start_session


@pytest.fixture
def s1(api) -> str:
    return start_session(api)


@pytest.fixture
def s2(api) -> str:
    return start_session(api)


def test_put_get_delete(api, s1):
    response = api.put("/connections/conn-1", {"session_id": s1})
    assert response.status_code == 200 and response.json() == {"connection_id": "conn-1", "session_id": s1}
    assert connection_get(connection_id="conn-1") == s1

    got = api.get("/connections/conn-1")
    assert got.status_code == 200 and got.json() == {"connection_id": "conn-1", "session_id": s1}

    deleted = api.delete("/connections/conn-1")
    assert deleted.status_code == 204 and deleted.content == b""
    assert connection_get(connection_id="conn-1") is None
    assert connections_for_session(session_id=s1) == []
    assert api.delete("/connections/conn-1").status_code == 204  # idempotent ($disconnect may repeat)


def test_rebinding_moves_the_connection(api, s1, s2):
    api.put("/connections/conn-1", {"session_id": s1})
    api.put("/connections/conn-1", {"session_id": s2})
    assert api.get("/connections/conn-1").json()["session_id"] == s2
    assert connections_for_session(session_id=s1) == [] and connections_for_session(session_id=s2) == ["conn-1"]


def test_unknown_connection_is_404(api):
    response = api.get("/connections/never")
    assert response.status_code == 404
    assert error_of(response) == {"code": "connection_not_found", "message": "connection never is not bound to a session",
                                  "field": "connection_id"}


def test_put_validates_the_body(api):
    for body, field in [({}, "session_id"), ({"session_id": "a b"}, "session_id"), ({"session_id": "s", "x": 1}, "x")]:
        response = api.put("/connections/conn-1", body)
        assert response.status_code == 400 and error_of(response)["field"] == field
    assert connection_get(connection_id="conn-1") is None


def test_read_key_may_get_but_not_put(api, read_key, s1, s2):
    api.put("/connections/conn-1", {"session_id": s1})
    assert api.get("/connections/conn-1", key=read_key).status_code == 200
    assert api.put("/connections/conn-1", {"session_id": s2}, key=read_key).status_code == 403
    assert connection_get(connection_id="conn-1") == s1


def test_binding_to_a_session_that_never_existed_is_404_and_changes_nothing(api, s1):
    api.put("/connections/conn-1", {"session_id": s1})
    response = api.put("/connections/conn-1", {"session_id": "never-started"})
    assert response.status_code == 404
    assert error_of(response) == {"code": "session_not_found", "message": "session never-started does not exist",
                                  "field": "session_id"}
    assert connection_get(connection_id="conn-1") == s1  # a refused rebind does not move the connection
    assert realtime_keys_for_session(session_id="never-started") == []


def test_binding_to_a_deleted_session_is_404_and_brings_no_redis_key_back(api, s1):
    api.put("/connections/conn-1", {"session_id": s1})
    privacy_delete(s1)
    assert connection_get(connection_id="conn-1") is None
    response = api.put("/connections/conn-2", {"session_id": s1})
    assert response.status_code == 404 and error_of(response)["code"] == "session_not_found"
    assert connection_get(connection_id="conn-2") is None and realtime_keys_for_session(session_id=s1) == []


def test_binding_to_a_closed_session_is_409(api, s1):
    api.post(f"/sessions/{s1}/close")
    response = api.put("/connections/conn-1", {"session_id": s1})
    assert response.status_code == 409
    assert error_of(response)["code"] == "session_closed" and error_of(response)["field"] == "session_id"
    assert connection_get(connection_id="conn-1") is None


def test_a_session_deleted_between_the_check_and_the_binding_is_not_bound(api, s1, monkeypatch):
    """The privacy delete lands after the existence check and before the mapping is written
    (run at exactly that point by wrapping the real write): the bind re-checks after writing,
    takes the mapping back and answers 404 — nothing is left for two hours."""
    from sessions_app.services import presence

    write = presence.connection_put

    def delete_then_write(**kwargs):
        privacy_delete(s1)
        write(**kwargs)

    monkeypatch.setattr(presence, "connection_put", delete_then_write)
    response = api.put("/connections/conn-1", {"session_id": s1})
    assert response.status_code == 404 and error_of(response)["code"] == "session_not_found"
    assert connection_get(connection_id="conn-1") is None and realtime_keys_for_session(session_id=s1) == []
