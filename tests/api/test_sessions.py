"""POST /sessions, GET /sessions/{id}, POST /sessions/{id}/close, POST /sessions/{id}/heartbeat."""

from __future__ import annotations

from datetime import timedelta

from sessions_app.clock import utcnow
from sessions_app.realtime import presence_get, presence_online, realtime_keys_for_session
from sessions_app.selectors import session_get
from sessions_app.services.idle_close import sessions_idle_close
from tests.builders import make_session

from .conftest import error_of, privacy_delete, start_session


def test_start_session_returns_201_with_the_stored_session(api):
    response = api.post("/sessions", {"customer_id": "cust-9", "channel": "app", "locale": "ja", "tags": ["vip", "isekai"]})
    assert response.status_code == 201
    body = response.json()
    stored = session_get(session_id=body["session_id"], consistent=True)
    assert stored.customer_id == "cust-9"
    assert body["customer_id"] == "cust-9" and body["channel"] == "app" and body["locale"] == "ja"
    assert body["tags"] == ["vip", "isekai"] and body["status"] == "active" and body["turn_count"] == 0
    assert body["started_at"].endswith("Z")


def test_start_session_defaults_locale_and_tags(api):
    body = api.post("/sessions", {"customer_id": "c", "channel": "web"}).json()
    assert body["locale"] == "en" and body["tags"] == []


def test_start_session_rejects_bad_fields_by_name(api):
    cases = [
        ({"channel": "web"}, "customer_id"),
        ({"customer_id": "c", "channel": "fax"}, "channel"),
        ({"customer_id": "c", "channel": "web", "locale": "fr"}, "locale"),
        ({"customer_id": "c", "channel": "web", "tags": "vip"}, "tags"),
        ({"customer_id": "c", "channel": "web", "tags": [""]}, "tags.0"),
        ({"customer_id": "c", "channel": "web", "tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"customer_id": "bad id!", "channel": "web"}, "customer_id"),
        ({"customer_id": 12, "channel": "web"}, "customer_id"),
        ({"customer_id": "c", "channel": "web", "colour": "red"}, "colour"),
    ]
    for body, field in cases:
        response = api.post("/sessions", body)
        assert response.status_code == 400, (body, response.content)
        error = error_of(response)
        assert error["code"] == "invalid_input" and error["field"] == field, (body, error)
        assert field.split(".")[0] in error["message"]


def test_start_session_with_the_callers_id_is_idempotent(api):
    body = {"customer_id": "cust-7", "channel": "line", "session_id": "bot-conv-0001"}
    first = api.post("/sessions", body)
    assert first.status_code == 201 and first.json()["session_id"] == "bot-conv-0001"
    retry = api.post("/sessions", {**body, "locale": "ja"})
    assert retry.status_code == 200 and retry.json() == first.json()
    assert session_get(session_id="bot-conv-0001", consistent=True).locale == "en"


def test_start_session_with_another_customers_id_is_a_conflict(api):
    api.post("/sessions", {"customer_id": "cust-1", "channel": "web", "session_id": "shared-id"})
    response = api.post("/sessions", {"customer_id": "cust-2", "channel": "web", "session_id": "shared-id"})
    assert response.status_code == 409
    assert error_of(response)["code"] == "session_id_taken" and error_of(response)["field"] == "session_id"
    assert session_get(session_id="shared-id", consistent=True).customer_id == "cust-1"
    bad = api.post("/sessions", {"customer_id": "cust-2", "channel": "web", "session_id": "no spaces"})
    assert bad.status_code == 400 and error_of(bad)["field"] == "session_id"


def test_get_session(api):
    session_id = start_session(api)
    response = api.get(f"/sessions/{session_id}")
    assert response.status_code == 200 and response.json()["session_id"] == session_id
    missing = api.get("/sessions/nope")
    assert missing.status_code == 404 and error_of(missing)["code"] == "session_not_found"


def test_close_session_then_close_again(api):
    session_id = start_session(api)
    response = api.post(f"/sessions/{session_id}/close")
    assert response.status_code == 200
    assert response.json()["status"] == "closed" and response.json()["closed_at"]
    assert api.post(f"/sessions/{session_id}/close").status_code == 200
    assert session_get(session_id=session_id, consistent=True).status == "closed"


def test_close_unknown_session_is_404(api):
    response = api.post("/sessions/nope/close")
    assert response.status_code == 404
    assert error_of(response) == {"code": "session_not_found", "message": "session nope does not exist", "field": "session_id"}


def test_heartbeat_marks_the_session_online(api):
    session_id = start_session(api)
    response = api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "conn-1"})
    assert response.status_code == 200
    assert response.json() == {"session_id": session_id, "state": "online", "connection_id": "conn-1"}
    presence = presence_get(session_id=session_id)
    assert presence.state == "online" and presence.connection_id == "conn-1"


def test_heartbeat_without_a_body(api):
    session_id = start_session(api)
    response = api.post(f"/sessions/{session_id}/heartbeat")
    assert response.status_code == 200 and response.json()["state"] == "online"
    assert presence_get(session_id=session_id).state == "online"


def test_heartbeat_for_a_session_that_never_existed_is_404_and_records_nothing(api):
    response = api.post("/sessions/never-started/heartbeat", {"connection_id": "conn-1"})
    assert response.status_code == 404
    assert error_of(response) == {"code": "session_not_found", "message": "session never-started does not exist",
                                  "field": "session_id"}
    assert realtime_keys_for_session(session_id="never-started") == [] and presence_online() == []


def test_heartbeat_after_a_privacy_delete_is_404_and_brings_no_redis_key_back(api):
    session_id = start_session(api)
    assert api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "conn-1"}).json()["state"] == "online"
    privacy_delete(session_id)
    response = api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "conn-1"})
    assert response.status_code == 404 and error_of(response)["code"] == "session_not_found"
    assert realtime_keys_for_session(session_id=session_id) == [] and presence_online() == []


def test_heartbeat_for_a_closed_session_is_409_and_it_stays_offline(api):
    """A closed session takes no more turns; "online" in the console would say the customer is
    still chatting, and it would undo the close's own presence clear."""
    session_id = start_session(api)
    api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "conn-1"})
    assert api.post(f"/sessions/{session_id}/close").status_code == 200
    response = api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "conn-1"})
    assert response.status_code == 409 and error_of(response)["code"] == "session_closed"
    assert error_of(response)["field"] == "session_id"
    assert presence_get(session_id=session_id).state == "offline"


def test_heartbeat_without_a_connection_id_reports_the_mapped_connection(api):
    session_id = start_session(api)
    assert api.put("/connections/ws-7", {"session_id": session_id}).status_code == 200
    response = api.post(f"/sessions/{session_id}/heartbeat")
    assert response.status_code == 200
    assert response.json() == {"session_id": session_id, "state": "online", "connection_id": "ws-7"}
    # Recorded with the heartbeat: the console's presence names it too.
    assert presence_get(session_id=session_id).connection_id == "ws-7"
    # Unbound ($disconnect), a heartbeat naming none answers what presence records: the reply and
    # the console never disagree.
    assert api.delete("/connections/ws-7").status_code == 204
    beat = api.post(f"/sessions/{session_id}/heartbeat", {}).json()
    assert beat["connection_id"] == presence_get(session_id=session_id).connection_id


def test_heartbeat_reports_the_connection_it_names_over_the_mapped_one(api):
    session_id = start_session(api)
    api.put("/connections/ws-old", {"session_id": session_id})
    response = api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "ws-new"})
    assert response.json()["connection_id"] == "ws-new"
    assert presence_get(session_id=session_id).connection_id == "ws-new"


def test_heartbeat_of_a_session_with_two_bindings_keeps_the_one_heartbeats_named(api):
    """A reconnect binds a new connection before the old one's $disconnect: of the two, the one
    the runtime's heartbeats named stays the session's connection."""
    session_id = start_session(api)
    api.put("/connections/ws-a", {"session_id": session_id})
    api.put("/connections/ws-b", {"session_id": session_id})
    assert api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "ws-b"}).json()["connection_id"] == "ws-b"
    for _ in range(2):
        assert api.post(f"/sessions/{session_id}/heartbeat").json()["connection_id"] == "ws-b"


def test_heartbeat_of_a_session_without_any_connection_reports_null(api):
    session_id = start_session(api)
    other = start_session(api)
    api.put("/connections/ws-other", {"session_id": other})
    assert api.post(f"/sessions/{session_id}/heartbeat").json() == {
        "session_id": session_id, "state": "online", "connection_id": None}


def test_a_closed_session_with_a_bound_connection_refuses_heartbeats_and_is_not_online(api):
    session_id = start_session(api)
    api.put("/connections/ws-1", {"session_id": session_id})
    assert api.post(f"/sessions/{session_id}/heartbeat").json()["state"] == "online"
    assert presence_online() == [session_id]
    assert api.post(f"/sessions/{session_id}/close").json()["status"] == "closed"
    # The close itself cleared presence: offline at once, not after PRESENCE_TTL_SECONDS.
    assert presence_get(session_id=session_id).state == "offline" and presence_online() == []
    response = api.post(f"/sessions/{session_id}/heartbeat")
    assert response.status_code == 409 and error_of(response)["code"] == "session_closed"
    assert presence_get(session_id=session_id).state == "offline" and presence_online() == []
    listed = api.get("/sessions", online="true").json()["sessions"]
    assert [s["session_id"] for s in listed] == []


def test_a_session_the_idle_sweep_closed_answers_409_to_appends_and_heartbeats(api, settings):
    settings.SESSION_IDLE_CLOSE_MINUTES = 60
    session_id = make_session(started_at=utcnow() - timedelta(hours=2)).session_id  # no turn since
    assert api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "ws-1"}).json()["state"] == "online"
    assert sessions_idle_close().closed == [session_id]
    assert api.get(f"/sessions/{session_id}").json()["status"] == "closed"
    append = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "back!", "client_msg_id": "m-1"})
    assert append.status_code == 409 and error_of(append)["code"] == "session_closed"
    heartbeat = api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "ws-1"})
    assert heartbeat.status_code == 409 and error_of(heartbeat)["code"] == "session_closed"
    assert presence_get(session_id=session_id).state == "offline"


def test_heartbeat_rejects_a_bad_connection_id(api):
    response = api.post("/sessions/s1/heartbeat", {"connection_id": "has space"})
    assert response.status_code == 400 and error_of(response)["field"] == "connection_id"


def test_close_through_the_api_drops_the_cached_context_and_clears_presence(api):
    """The bot's context must say "closed" at once, not after CONTEXT_CACHE_TTL: every entry
    point closes through the one service, which drops the cached contexts and the presence."""
    session_id = start_session(api)
    assert api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "hi", "client_msg_id": "c-1"}).status_code == 201
    api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "conn-9"})
    api.get(f"/sessions/{session_id}/context")
    cached = api.get(f"/sessions/{session_id}/context")
    assert cached["X-Context-Source"] == "redis" and cached.json()["session"]["status"] == "active"
    assert api.post(f"/sessions/{session_id}/close").status_code == 200
    after = api.get(f"/sessions/{session_id}/context")
    assert after["X-Context-Source"] != "redis"
    assert after.json()["session"]["status"] == "closed"
    assert presence_get(session_id=session_id).state == "offline"
