"""POST /sessions/{id}/turns: the append, its replay, its rate-limit headers and its errors."""

from __future__ import annotations

from sessions_app import keys
from sessions_app.models import Turn
from sessions_app.selectors import session_get

from .conftest import error_of, start_session


def stored_turns(session_id: str) -> list[Turn]:
    return list(Turn.query(keys.session_pk(session_id), Turn.sk.startswith("TURN#"), consistent_read=True))


def test_append_returns_201_with_the_stored_turn_and_rate_headers(api, settings):
    settings.RATE_LIMIT_TURNS = 30
    session_id = start_session(api)
    response = api.post(f"/sessions/{session_id}/turns", {
        "role": "user", "text": "おすすめの漫画は?", "client_msg_id": "m-1",
        "model": "claude", "latency_ms": 12.5, "tokens_in": 10, "tokens_out": 0,
    })
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["seq"] == 1 and body["role"] == "user" and body["text"] == "おすすめの漫画は?"
    assert body["client_msg_id"] == "m-1" and body["model"] == "claude" and body["latency_ms"] == 12.5
    assert body["tokens_in"] == 10 and body["tokens_out"] == 0
    assert response["X-RateLimit-Limit"] == "30"
    assert response["X-RateLimit-Remaining"] == "29"
    assert int(response["X-RateLimit-Reset"]) >= 1
    assert "Retry-After" not in response
    second = api.post(f"/sessions/{session_id}/turns", {"role": "assistant", "text": "ワンピース", "client_msg_id": "m-2"})
    assert second.status_code == 201 and second.json()["seq"] == 2
    assert second["X-RateLimit-Remaining"] == "28"


def test_replay_with_the_same_client_msg_id_returns_the_stored_turn_with_200(api):
    session_id = start_session(api)
    first = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "hello", "client_msg_id": "m-1"})
    replay = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "hello", "client_msg_id": "m-1"})
    assert first.status_code == 201 and replay.status_code == 200
    assert replay.json() == first.json()
    assert [t.seq for t in stored_turns(session_id)] == [1]
    assert session_get(session_id=session_id, consistent=True).turn_count == 1


def test_a_replay_with_other_text_or_role_is_409_naming_client_msg_id_not_the_old_turn(api, settings):
    settings.RATE_LIMIT_TURNS = 1
    session_id = start_session(api)
    assert api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "hello", "client_msg_id": "m-1"}).status_code == 201
    # The customer's window is used up too: the conflict is still named, not a 429 or the old turn.
    for body in ({"role": "user", "text": "goodbye"}, {"role": "assistant", "text": "hello"}):
        response = api.post(f"/sessions/{session_id}/turns", {**body, "client_msg_id": "m-1"})
        assert response.status_code == 409, response.content
        error = error_of(response)
        assert error["code"] == "client_msg_id_conflict" and error["field"] == "client_msg_id"
    api.post(f"/sessions/{session_id}/close")
    response = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "goodbye", "client_msg_id": "m-1"})
    assert response.status_code == 409 and error_of(response)["code"] == "client_msg_id_conflict"
    assert [(t.seq, t.text) for t in stored_turns(session_id)] == [(1, "hello")]


def test_rate_limited_append_is_429_with_retry_after_and_writes_nothing(api, settings):
    settings.RATE_LIMIT_TURNS = 2
    session_id = start_session(api)
    for n in (1, 2):
        assert api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "x", "client_msg_id": f"m-{n}"}).status_code == 201
    response = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "x", "client_msg_id": "m-3"})
    assert response.status_code == 429
    assert error_of(response)["code"] == "rate_limited"
    assert int(response["Retry-After"]) >= 1
    assert response["X-RateLimit-Limit"] == "2" and response["X-RateLimit-Remaining"] == "0"
    assert int(response["X-RateLimit-Reset"]) >= 1
    assert len(stored_turns(session_id)) == 2
    # A replay of a stored turn is still answered while limited: the client's retry must not fail.
    replay = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "x", "client_msg_id": "m-2"})
    assert replay.status_code == 200 and replay.json()["seq"] == 2


def test_append_to_unknown_session_is_404(api):
    response = api.post("/sessions/nope/turns", {"role": "user", "text": "x", "client_msg_id": "m"})
    assert response.status_code == 404 and error_of(response)["code"] == "session_not_found"


def test_append_to_closed_session_is_409_but_a_replay_still_answers(api):
    session_id = start_session(api)
    api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "x", "client_msg_id": "m-1"})
    api.post(f"/sessions/{session_id}/close")
    response = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "x", "client_msg_id": "m-2"})
    assert response.status_code == 409 and error_of(response)["code"] == "session_closed"
    assert api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "x", "client_msg_id": "m-1"}).status_code == 200
    assert len(stored_turns(session_id)) == 1


def test_append_while_another_writer_holds_the_lock_is_409(api, settings, redis_client):
    from sessions_app.realtime import session_write_lock

    settings.SESSION_LOCK_WAIT = 0.0
    session_id = start_session(api)
    with session_write_lock(session_id=session_id):
        response = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "x", "client_msg_id": "m-1"})
    assert response.status_code == 409 and error_of(response)["code"] == "session_locked"
    assert stored_turns(session_id) == []
    assert api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "x", "client_msg_id": "m-1"}).status_code == 201


def test_oversize_text_is_413_naming_text_and_nothing_is_written(api, settings):
    settings.TURN_TEXT_MAX_BYTES = 64
    session_id = start_session(api)
    response = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "あ" * 22, "client_msg_id": "m-1"})  # 66 bytes
    assert response.status_code == 413
    error = error_of(response)
    assert error["code"] == "payload_too_large"
    assert error["field"] == "text" and "64" in error["message"]
    assert error["details"] == {"limit": 64}
    assert stored_turns(session_id) == []
    assert api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "あ" * 21, "client_msg_id": "m-1"}).status_code == 201


def test_default_text_limit_is_16_kib(api):
    session_id = start_session(api)
    over = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "a" * (16 * 1024 + 1), "client_msg_id": "m-1"})
    assert over.status_code == 413 and error_of(over)["field"] == "text"
    at = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "a" * (16 * 1024), "client_msg_id": "m-1"})
    assert at.status_code == 201


def test_a_17_kb_turn_answers_413_as_the_schema_declares(api):
    session_id = start_session(api)
    turn = {"role": "user", "text": "a" * (17 * 1024), "client_msg_id": "m-17k"}
    response = api.post(f"/sessions/{session_id}/turns", turn)
    assert response.status_code == 413
    assert response.json() == {"error": {
        "code": "payload_too_large", "field": "text", "details": {"limit": 16 * 1024},
        "message": f"text is {17 * 1024} bytes; the limit is {16 * 1024} bytes (UTF-8)",
    }}
    # The status is one the append operation declares, with the one error body.
    declared = api.client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/sessions/{session_id}/turns"]["post"]
    assert "413" in declared["responses"]
    assert stored_turns(session_id) == []
    # Refused before the rate limit and the lock: the same message, shorter, is the first turn.
    retry = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "a" * 100, "client_msg_id": "m-17k"})
    assert retry.status_code == 201 and retry.json()["seq"] == 1


def test_invalid_turn_bodies_name_the_field(api):
    session_id = start_session(api)
    good = {"role": "user", "text": "hi", "client_msg_id": "m-1"}
    cases = [
        ({**good, "role": "bot"}, "role"),
        ({**good, "text": ""}, "text"),
        ({**good, "text": "   "}, "text"),
        ({**good, "text": 5}, "text"),
        ({k: v for k, v in good.items() if k != "text"}, "text"),
        ({k: v for k, v in good.items() if k != "client_msg_id"}, "client_msg_id"),
        ({**good, "client_msg_id": "a/b"}, "client_msg_id"),
        ({**good, "tokens_in": -1}, "tokens_in"),
        ({**good, "tokens_in": "12"}, "tokens_in"),
        ({**good, "tokens_out": True}, "tokens_out"),
        ({**good, "tokens_out": 1.5}, "tokens_out"),
        ({**good, "tokens_out": 10**40}, "tokens_out"),  # beyond what a DynamoDB number holds
        ({**good, "latency_ms": 1e308}, "latency_ms"),
        ({**good, "latency_ms": "fast"}, "latency_ms"),
        ({**good, "model": "m" * 101}, "model"),
        ({**good, "seq": 7}, "seq"),
    ]
    for body, field in cases:
        response = api.post(f"/sessions/{session_id}/turns", body)
        assert response.status_code == 400, (body, response.content)
        error = error_of(response)
        assert error["code"] == "invalid_input" and error["field"] == field, (body, error)
    assert stored_turns(session_id) == []


def test_integral_json_numbers_are_accepted_as_token_counts(api):
    session_id = start_session(api)
    response = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "hi", "client_msg_id": "m-1", "tokens_in": 12.0})
    assert response.status_code == 201 and response.json()["tokens_in"] == 12


def test_several_invalid_fields_are_all_listed(api):
    response = api.post("/sessions/s1/turns", {"role": "bot", "text": 1})
    error = error_of(response)
    assert response.status_code == 400
    assert {e["field"] for e in error["details"]["errors"]} == {"role", "text", "client_msg_id"}
