"""PUT/GET/DELETE /connections/{id}: the WebSocket mapping, kept only in Redis."""

from __future__ import annotations

from sessions_app.realtime import connection_get, connections_for_session

from .conftest import error_of


def test_put_get_delete(api):
    response = api.put("/connections/conn-1", {"session_id": "s1"})
    assert response.status_code == 200 and response.json() == {"connection_id": "conn-1", "session_id": "s1"}
    assert connection_get(connection_id="conn-1") == "s1"

    got = api.get("/connections/conn-1")
    assert got.status_code == 200 and got.json() == {"connection_id": "conn-1", "session_id": "s1"}

    deleted = api.delete("/connections/conn-1")
    assert deleted.status_code == 204 and deleted.content == b""
    assert connection_get(connection_id="conn-1") is None
    assert connections_for_session(session_id="s1") == []
    assert api.delete("/connections/conn-1").status_code == 204  # idempotent ($disconnect may repeat)


def test_rebinding_moves_the_connection(api):
    api.put("/connections/conn-1", {"session_id": "s1"})
    api.put("/connections/conn-1", {"session_id": "s2"})
    assert api.get("/connections/conn-1").json()["session_id"] == "s2"
    assert connections_for_session(session_id="s1") == [] and connections_for_session(session_id="s2") == ["conn-1"]


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


def test_read_key_may_get_but_not_put(api, read_key):
    api.put("/connections/conn-1", {"session_id": "s1"})
    assert api.get("/connections/conn-1", key=read_key).status_code == 200
    assert api.put("/connections/conn-1", {"session_id": "s2"}, key=read_key).status_code == 403
    assert connection_get(connection_id="conn-1") == "s1"
