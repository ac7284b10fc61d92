"""manage.py summarize: one session, a customer's sessions, a day's sessions."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.builders import at, make_session

from tests.fixtures.celery_workers import summaries_of


def _run(*args) -> str:
    out = StringIO()
    call_command("summarize", *args, stdout=out)
    return out.getvalue()


def test_summarize_one_session_synchronously(ddb, redis_client):
    meta = make_session(turns=3)
    out = _run("--session", meta.session_id, "--sync")
    assert f"[1/1] {meta.session_id}: written (through turn 3)" in out
    assert [int(s.through_seq) for s in summaries_of(meta.session_id)] == [3]
    assert f"[1/1] {meta.session_id}: covered" in _run("--session", meta.session_id, "--sync")


def test_summarize_a_customers_sessions_only(ddb, redis_client):
    mine = [make_session(customer_id="alice", turns=2).session_id for _ in range(3)]
    other = make_session(customer_id="bob", turns=2).session_id
    out = _run("--customer", "alice", "--sync")
    assert "3 session(s) to summarise" in out and "[3/3]" in out
    assert all(summaries_of(s) for s in mine)
    assert summaries_of(other) == []


def test_summarize_a_days_sessions_by_enqueueing(ddb, broker, broker_redis):
    day = [make_session(turns=1, started_at=at("2026-03-04", m)).session_id for m in range(3)]
    make_session(turns=1, started_at=at("2026-03-05"))
    out = _run("--day", "2026-03-04")
    assert "3 session(s) to enqueue" in out and out.count(": queued (task ") == 3
    assert broker_redis.llen("celery") == 3
    assert all(s in out for s in day)


def test_summarize_reports_a_missing_session_as_an_error(ddb, redis_client):
    with pytest.raises(CommandError):
        _run("--session", "nope", "--sync")
