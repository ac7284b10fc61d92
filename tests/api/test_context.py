"""GET /sessions/{id}/context: the bot's hot read."""

from __future__ import annotations

from sessions_app import keys
from sessions_app.models import SessionMeta, Summary
from sessions_app.clock import utcnow

from .conftest import error_of, start_session


def append(api, session_id: str, n: int) -> dict:
    response = api.post(f"/sessions/{session_id}/turns", {"role": "user" if n % 2 else "assistant",
                                                          "text": f"turn {n}", "client_msg_id": f"m-{n}"})
    assert response.status_code == 201, response.content
    return response.json()


def test_context_returns_session_last_turns_oldest_first_and_no_summary(api):
    session_id = start_session(api, locale="ja")
    for n in range(1, 6):
        append(api, session_id, n)
    response = api.get(f"/sessions/{session_id}/context", turns=3)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["session"]["session_id"] == session_id and body["session"]["turn_count"] == 5
    assert [t["seq"] for t in body["turns"]] == [3, 4, 5]
    assert [t["text"] for t in body["turns"]] == ["turn 3", "turn 4", "turn 5"]
    assert body["summary"] is None
    assert response["X-Context-Source"] == "dynamodb"


def test_second_load_is_served_from_redis_with_the_same_body(api):
    session_id = start_session(api)
    append(api, session_id, 1)
    first = api.get(f"/sessions/{session_id}/context")
    second = api.get(f"/sessions/{session_id}/context")
    assert first["X-Context-Source"] == "dynamodb" and second["X-Context-Source"] == "redis"
    assert second.content == first.content


def test_context_includes_the_latest_summary(api):
    session_id = start_session(api)
    for n in range(1, 4):
        append(api, session_id, n)
    pk = keys.session_pk(session_id)
    Summary(pk, keys.summary_sk(2), through_seq=2, text="they like isekai", generator="extractive", created_at=utcnow()).save()
    SessionMeta(pk, keys.META_SK).update(actions=[SessionMeta.summary_through.set(2)])
    body = api.get(f"/sessions/{session_id}/context", min_seq=3).json()
    assert body["summary"]["text"] == "they like isekai" and body["summary"]["through_seq"] == 2


def test_min_seq_is_accepted_and_the_answer_covers_it(api):
    session_id = start_session(api)
    seq = append(api, session_id, 1)["seq"]
    body = api.get(f"/sessions/{session_id}/context", min_seq=seq, turns=1).json()
    assert body["turns"][-1]["seq"] == seq


def test_context_errors(api, settings):
    settings.CONTEXT_MAX_TURNS = 50
    session_id = start_session(api)
    cases = [
        ({"turns": 0}, 400, "turns"),
        ({"turns": 51}, 400, "turns"),
        ({"turns": "many"}, 400, "turns"),
        ({"min_seq": -1}, 400, "min_seq"),
    ]
    for params, status, field in cases:
        response = api.get(f"/sessions/{session_id}/context", **params)
        assert response.status_code == status, (params, response.content)
        assert error_of(response)["field"] == field
    missing = api.get("/sessions/nope/context")
    assert missing.status_code == 404 and error_of(missing)["code"] == "session_not_found"
    bad_id = api.get("/sessions/-bad/context")
    assert bad_id.status_code == 400 and error_of(bad_id)["field"] == "session_id"


def test_empty_session_context(api):
    session_id = start_session(api)
    body = api.get(f"/sessions/{session_id}/context").json()
    assert body["turns"] == [] and body["session"]["turn_count"] == 0
