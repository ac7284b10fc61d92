"""GET /api/v1/sessions: the console's filters (one SessionFilter) over the JSON API, with cursors."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import signing

from sessions_app import keys, services
from sessions_app.clock import utcnow
from sessions_app.models import SessionMeta
from sessions_app.realtime import presence_heartbeat
from sessions_app.selectors.summaries import summary_state_key
from tests.api.conftest import error_of
from tests.builders import at, make_session

DAY = {"day_from": "2026-11-20", "day_to": "2026-11-20"}


def _ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [s["session_id"] for s in response.json()["sessions"]]


def test_lists_newest_first_with_the_session_fields_and_summary_state(api, read_key):
    old = make_session(customer_id="cust-a", started_at=at("2026-11-20"), turns=2)
    new = make_session(customer_id="cust-b", channel="line", started_at=at("2026-11-20", 5))
    response = api.get("/sessions", key=read_key, **DAY)
    body = response.json()
    assert [s["session_id"] for s in body["sessions"]] == [new.session_id, old.session_id]
    assert body["cursor"] is None and body["short_reason"] is None
    first = body["sessions"][0]
    assert (first["customer_id"], first["channel"], first["started_at"], first["summary_state"]) == (
        "cust-b", "line", "2026-11-20T08:05:00Z", "none")
    assert body["sessions"][1]["turn_count"] == 2 and body["sessions"][1]["summary_state"] == "none"


def test_filters_combine(api):
    keep = make_session(customer_id="cust-a", channel="app", started_at=at("2026-11-20"))
    make_session(customer_id="cust-a", channel="web", started_at=at("2026-11-20", 1))
    make_session(customer_id="cust-b", channel="app", started_at=at("2026-11-20", 2))
    closed = make_session(customer_id="cust-a", channel="app", started_at=at("2026-11-20", 3))
    services.session_close(session_id=closed.session_id)
    assert _ids(api.get("/sessions", customer_id="cust-a", channel="app", status="active", **DAY)) == [keep.session_id]
    assert _ids(api.get("/sessions", status="closed", **DAY)) == [closed.session_id]


def test_summary_state_is_the_consoles_a_lost_pending_request_is_stale(api, settings):
    lost = make_session(started_at=at("2026-11-20"), turns=2)
    SessionMeta.get(lost.pk, lost.sk).update(actions=[
        # What summary_request's pending mark writes (state and its by_summary_state key), an hour ago.
        SessionMeta.summary_state.set("pending"),
        SessionMeta.gsi8pk.set(summary_state_key(session_id=lost.session_id, state="pending")),
        SessionMeta.summary_requested_at.set(utcnow() - timedelta(minutes=settings.SUMMARY_PENDING_MINUTES + 1)),
    ])
    make_session(started_at=at("2026-11-20", 1))
    assert _ids(api.get("/sessions", summary_state="stale", **DAY)) == [lost.session_id]
    assert _ids(api.get("/sessions", summary_state="pending", **DAY)) == []


def test_online_lists_from_presence(api):
    online = make_session(started_at=at("2026-11-20"))
    make_session(started_at=at("2026-11-20", 1))
    presence_heartbeat(session_id=online.session_id)
    response = api.get("/sessions", online="true")
    assert _ids(response) == [online.session_id] and response.json()["cursor"] is None


def test_cursor_pages_without_gaps_or_duplicates(api):
    made = [make_session(started_at=at("2026-11-20", n)).session_id for n in range(5)]
    seen, cursor, pages = [], None, 0
    while True:
        params = {**DAY, "limit": 2, **({"cursor": cursor} if cursor else {})}
        body = api.get("/sessions", **params).json()
        seen += [s["session_id"] for s in body["sessions"]]
        pages += 1
        cursor = body["cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made)) and pages == 3


def test_default_page_size_is_the_setting(api, settings):
    settings.PAGE_SIZE = 3
    for n in range(4):
        make_session(started_at=at("2026-11-20", n))
    body = api.get("/sessions", **DAY).json()
    assert len(body["sessions"]) == 3 and body["cursor"] is not None


@pytest.mark.parametrize("params, field", [
    ({"limit": 101}, "limit"),
    ({"limit": 0}, "limit"),
    ({"status": "open"}, "status"),
    ({"channel": "fax"}, "channel"),
    ({"summary_state": "queued"}, "summary_state"),
    ({"customer_id": "no spaces"}, "customer_id"),
    ({"day_from": "2026-13-01"}, "day_from"),
    ({"day_from": "2026-11-21", "day_to": "2026-11-20"}, "day_from"),
    ({"day_from": "2024-01-01", "day_to": "2026-11-20"}, "day_from"),
    ({"day_to": "0001-01-01"}, "day_to"),
    ({"cursor": "forged"}, "cursor"),
    ({"turns": 5}, "turns"),
])
def test_bad_input_is_400_naming_the_field(api, params, field):
    response = api.get("/sessions", **params)
    assert response.status_code == 400, response.content
    assert error_of(response)["field"] == field


def test_a_cursor_is_bound_to_its_filters(api):
    for n in range(3):
        make_session(started_at=at("2026-11-20", n), channel="web")
    cursor = api.get("/sessions", limit=1, **DAY).json()["cursor"]
    response = api.get("/sessions", limit=1, channel="web", cursor=cursor, **DAY)
    assert response.status_code == 400 and error_of(response)["code"] == "invalid_cursor"


def test_needs_an_api_key(api):
    response = api.get("/sessions", key=None)
    assert response.status_code == 401 and error_of(response)["code"] == "unauthorized"


def test_post_to_sessions_still_starts_a_session(api):
    """The listing shares the /sessions path with session start: both methods still answer."""
    response = api.post("/sessions", {"customer_id": "cust-1", "channel": "web"})
    assert response.status_code == 201
    assert _ids(api.get("/sessions")) == [response.json()["session_id"]]


@pytest.mark.parametrize("forge", [
    lambda f: [1],
    lambda f: {"p": "abcdefgh"},
    lambda f: {"f": f, "g": 0, "p": "abcdefgh"},
    lambda f: {"f": f, "g": 0, "p": [1] * 8},
    lambda f: {"f": f, "g": True, "p": None},
    lambda f: {"f": f, "g": 10**6, "p": None},
    lambda f: {"f": {"x": 1}, "g": 0, "p": None},
])
def test_a_signed_cursor_with_a_forged_state_is_400_invalid_cursor(api, settings, forge):
    settings.DYNAMODB_DAY_SHARDS = 8
    for n in range(3):
        make_session(started_at=at("2026-11-20", n))
    real = api.get("/sessions", limit=1, **DAY).json()["cursor"]
    fingerprint = signing.loads(real, salt=keys.CURSOR_SALT)["s"]["f"]
    forged = keys.cursor_encode(keys.Cursor(kind="sessions", state=forge(fingerprint)))
    response = api.get("/sessions", limit=1, cursor=forged, **DAY)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert error["code"] == "invalid_cursor" and error["field"] == "cursor"
