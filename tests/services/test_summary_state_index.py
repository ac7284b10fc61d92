"""The by_summary_state index: every writer of META's summary counters keeps the session's key
equal to the state it shows, so a summary filter is served from the index and fills its pages."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest

from sessions_app import keys
from sessions_app.clock import utcnow
from sessions_app.models import SessionMeta
from sessions_app.selectors.browse import session_find
from sessions_app.selectors.filters import SUMMARY_STATES, SessionFilter
from sessions_app.selectors.summaries import SummaryStates, meta_stored_summary_state, summary_state, summary_state_key
from sessions_app.services import session_keys_backfill, summaries
from sessions_app.services.summaries import summary_generate, summary_write
from sessions_app.services.turns import turn_write
from tests.builders import at, make_session, msg_id
from tests.fixtures.celery_workers import meta_of


def _listed_under(session_id: str, *, now=None) -> list[str]:
    """The summary-state filters whose listing shows the session."""
    return [state for state in SUMMARY_STATES
            if session_id in {m.meta.session_id for m in session_find(filters=SessionFilter(summary_state=state), limit=200).matches}]


def _check(session_id: str, shown: str) -> None:
    meta = meta_of(session_id)
    assert meta.gsi8pk == summary_state_key(session_id=session_id, state=meta_stored_summary_state(meta))
    assert summary_state(meta=meta).state == shown
    assert _listed_under(session_id) == [shown]


def test_each_step_of_a_session_moves_its_key_to_the_state_it_shows(ddb, redis_client, broker):
    meta = make_session()
    _check(meta.session_id, SummaryStates.NONE)
    for n in range(3):
        turn_write(session_id=meta.session_id, role="user", text=f"t{n}", client_msg_id=f"m{n}")
    _check(meta.session_id, SummaryStates.NONE)
    task_id = summaries.summary_request(session_id=meta.session_id, reason="test")
    _check(meta.session_id, SummaryStates.PENDING)
    summary_generate(session_id=meta.session_id, task_id=task_id)
    _check(meta.session_id, SummaryStates.FRESH)
    turn_write(session_id=meta.session_id, role="user", text="later", client_msg_id="m9")
    _check(meta.session_id, SummaryStates.STALE)
    turn_write(session_id=meta.session_id, role="user", text="and later", client_msg_id="m10")
    _check(meta.session_id, SummaryStates.STALE)
    task_id = summaries.summary_request(session_id=meta.session_id, reason="test")
    summaries.summary_mark_attempt(session_id=meta.session_id, task_id=task_id, retries=1, error="x", failed=False)
    _check(meta.session_id, SummaryStates.PENDING)
    summaries.summary_mark_attempt(session_id=meta.session_id, task_id=task_id, retries=6, error="boom", failed=True)
    _check(meta.session_id, SummaryStates.FAILED)
    summary_generate(session_id=meta.session_id, task_id="again")
    _check(meta.session_id, SummaryStates.FRESH)


def test_a_request_the_broker_refused_goes_back_to_the_state_before_it(ddb, redis_client, monkeypatch):
    from sessions_app.exceptions import QueueUnavailable

    def refuse(*, name, args, task_id):
        raise QueueUnavailable("could not publish: refused")

    never = make_session(turns=2)
    once = make_session(turns=2)
    summary_generate(session_id=once.session_id)
    turn_write(session_id=once.session_id, role="user", text="more", client_msg_id=msg_id())
    monkeypatch.setattr(summaries, "task_publish", refuse)
    for meta, shown in ((never, SummaryStates.NONE), (once, SummaryStates.STALE)):
        assert summaries.summary_request(session_id=meta.session_id, reason="test") is None
        _check(meta.session_id, shown)


def test_an_expired_request_is_listed_under_the_state_it_shows(ddb, redis_client, broker, settings):
    meta = make_session(turns=2)
    summaries.summary_request(session_id=meta.session_id, reason="test")
    _check(meta.session_id, SummaryStates.PENDING)
    SessionMeta(keys.session_pk(meta.session_id), keys.META_SK).update(
        actions=[SessionMeta.summary_requested_at.set(utcnow() - timedelta(minutes=settings.SUMMARY_PENDING_MINUTES + 1))])
    assert _listed_under(meta.session_id) == [SummaryStates.STALE]


def test_a_summary_racing_appends_never_leaves_a_wrong_key(ddb, redis_client):
    """Appends and summary writes on one session from two threads: whatever interleaving, the
    key afterwards is the state META shows (the append's condition, and _due_clear's)."""
    meta = make_session(turns=1)
    errors: list[BaseException] = []

    def appends():
        try:
            for n in range(12):
                turn_write(session_id=meta.session_id, role="user", text=f"a{n}", client_msg_id=msg_id())
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    def summarise():
        try:
            for _ in range(12):
                summary_generate(session_id=meta.session_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=appends), threading.Thread(target=summarise)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    stored = meta_of(meta.session_id)
    assert stored.gsi8pk == summary_state_key(session_id=meta.session_id, state=meta_stored_summary_state(stored))
    summary_generate(session_id=meta.session_id)
    _check(meta.session_id, SummaryStates.FRESH)


def test_a_summary_filter_fills_every_page_from_the_index(ddb, redis_client):
    """One fresh session in five: each page of "fresh" is full and examines only fresh sessions
    (nothing read to be thrown away), and the pages together list each exactly once."""
    day = utcnow().date()
    fresh = set()
    for n in range(40):
        meta = make_session(turns=2, started_at=at(day.isoformat(), minute=-n - 1) if n else None)
        if n % 5 == 0:
            summary_write(session_id=meta.session_id, through_seq=2, text="s", generator="test", expires_at=None)
            fresh.add(meta.session_id)
    seen, cursor = [], None
    while True:
        page = session_find(filters=SessionFilter(summary_state=SummaryStates.FRESH), cursor=cursor, limit=3)
        assert page.short_reason is None
        assert page.examined == len(page.matches)
        seen += [m.meta.session_id for m in page.matches]
        if page.cursor is None:
            break
        assert len(page.matches) == 3
        cursor = page.cursor
    assert sorted(seen) == sorted(fresh) and len(seen) == len(fresh)
    none = session_find(filters=SessionFilter(summary_state=SummaryStates.NONE), limit=50)
    assert {m.meta.session_id for m in none.matches}.isdisjoint(fresh) and len(none.matches) == 32


def test_summary_filters_combine_with_status_and_channel(ddb, redis_client):
    web = make_session(channel="web", turns=2)
    app = make_session(channel="app", turns=2)
    closed = make_session(channel="web", turns=2)
    from sessions_app.services import session_close
    session_close(session_id=closed.session_id, final_summary=False)
    found = session_find(filters=SessionFilter(summary_state=SummaryStates.NONE, channel="web", status="active"))
    assert [m.meta.session_id for m in found.matches] == [web.session_id]
    found = session_find(filters=SessionFilter(summary_state=SummaryStates.NONE, status="closed"))
    assert [m.meta.session_id for m in found.matches] == [closed.session_id]
    assert app.session_id in _listed_under_channel("app")


def _listed_under_channel(channel: str) -> set[str]:
    return {m.meta.session_id for m in session_find(filters=SessionFilter(summary_state=SummaryStates.NONE, channel=channel)).matches}


@pytest.mark.parametrize("shown", [SummaryStates.NONE, SummaryStates.FRESH, SummaryStates.STALE, SummaryStates.FAILED])
def test_backfill_indexes_older_sessions_under_their_state(ddb, redis_client, shown):
    day: date = utcnow().date()
    meta = make_session(turns=2)
    if shown in (SummaryStates.FRESH, SummaryStates.STALE):
        summary_write(session_id=meta.session_id, through_seq=2 if shown == SummaryStates.FRESH else 1, text="s",
                      generator="test", expires_at=None)
    if shown == SummaryStates.FAILED:
        SessionMeta(keys.session_pk(meta.session_id), keys.META_SK).update(
            actions=[SessionMeta.summary_state.set(SummaryStates.FAILED)])
    # As written before the index existed.
    SessionMeta(keys.session_pk(meta.session_id), keys.META_SK).update(
        actions=[SessionMeta.gsi8pk.remove(), SessionMeta.gsi8sk.remove()])
    assert _listed_under(meta.session_id) == []
    report = session_keys_backfill(day_from=day, day_to=day)
    assert report.sessions_updated == 1
    _check(meta.session_id, shown)
    assert session_keys_backfill(day_from=day, day_to=day).sessions_updated == 0
