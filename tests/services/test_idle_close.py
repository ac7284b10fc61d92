"""The idle close sweep against DynamoDB Local (directly and through the DAX node) and Redis: idle
open sessions close with reason idle, audited and summarised; recent ones, and ones a staff member
owns, stay open; a turn that lands between the sweep's read and its close wins."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sessions_app.clock import utcnow
from sessions_app.exceptions import SessionClosed
from sessions_app.models import AuditLog, SessionMeta, SessionStatus
from sessions_app.realtime import presence_get, presence_heartbeat
from sessions_app.selectors import context_load, session_get
from sessions_app.selectors.summaries import SummaryStates, summary_state
from sessions_app.services.handoff import handoff_request, handoff_take
from sessions_app.services.idle_close import sessions_idle_close
from sessions_app.services.sessions import session_close_if_idle
from sessions_app.services.turns import turn_append, turn_write
from tests.builders import make_session
from tests.fixtures.read_paths import ddb  # noqa: F401 — both read paths

pytestmark = pytest.mark.django_db

IDLE_MINUTES = 60


@pytest.fixture(autouse=True)
def idle_minutes(settings):
    settings.SESSION_IDLE_CLOSE_MINUTES = IDLE_MINUTES


def _idle_for(session_id: str, minutes: int) -> None:
    """Test setup: move the session's last activity (its last turn and its hand-off request, where
    it has them) back in time, as if nothing had happened since."""
    past = utcnow() - timedelta(minutes=minutes)
    meta = session_get(session_id=session_id, consistent=True)
    actions = [SessionMeta.last_message_at.set(past)] if meta.last_message_at else []
    if meta.handoff_at:
        actions.append(SessionMeta.handoff_at.set(past))
    if actions:
        meta.update(actions=actions)


def _started(hours_ago: float = 3, **fields) -> str:
    return make_session(started_at=utcnow() - timedelta(hours=hours_ago), **fields).session_id


def _status(session_id: str) -> str:
    return session_get(session_id=session_id, consistent=True).status


def test_an_idle_session_is_closed_with_reason_idle_audited_and_summarised(ddb, redis_client, broker):
    idle = _started(turns=3)
    _idle_for(idle, IDLE_MINUTES + 5)
    never_written = _started()  # no turns: idle since its start
    presence_heartbeat(session_id=idle, connection_id="ws-1")
    context_load(session_id=idle)
    assert context_load(session_id=idle).source == "redis"  # the bot's context is cached

    report = sessions_idle_close()

    assert sorted(report.closed) == sorted([idle, never_written]) and report.moved == [] and not report.more
    meta = session_get(session_id=idle, consistent=True)
    assert meta.status == SessionStatus.CLOSED and meta.closed_at is not None
    assert meta.gsi3pk is None  # out of the by_status index: the next sweep will not see it
    audit = AuditLog.objects.get(session_id=idle)
    assert audit.action == "session_close" and audit.outcome == "ok" and audit.actor is None
    assert audit.customer_id == meta.customer_id
    assert audit.detail["reason"] == "idle" and audit.detail["status_before"] == "active"
    assert audit.detail["idle_close_minutes"] == IDLE_MINUTES
    # As any close: the final summary is requested, presence and the cached context are gone.
    assert summary_state(meta=meta).state == SummaryStates.PENDING
    assert presence_get(session_id=idle).state == "offline"
    after = context_load(session_id=idle)
    assert after.source != "redis" and b'"status":"closed"' in after.payload.replace(b" ", b"")
    # A session without turns has nothing to summarise.
    assert summary_state(meta=session_get(session_id=never_written, consistent=True)).state == SummaryStates.NONE


def test_recent_sessions_stay_open(ddb, redis_client, broker):
    talking = _started(turns=2)  # started long ago, but its last turn is now
    almost = _started(turns=1)
    _idle_for(almost, IDLE_MINUTES - 5)
    new = make_session().session_id  # started now: not even a candidate

    report = sessions_idle_close()

    assert report.closed == [] and report.moved == []
    assert {_status(s) for s in (talking, almost, new)} == {SessionStatus.ACTIVE}
    assert not AuditLog.objects.exists()


def test_a_second_run_closes_nothing_twice(ddb, redis_client, broker):
    idle = _started(turns=1)
    _idle_for(idle, IDLE_MINUTES + 1)
    assert sessions_idle_close().closed == [idle]
    again = sessions_idle_close()
    assert again.closed == [] and again.moved == []
    assert AuditLog.objects.filter(session_id=idle).count() == 1


def test_a_turn_landing_between_the_read_and_the_close_wins(ddb, redis_client, broker):
    session_id = _started(turns=1)
    _idle_for(session_id, IDLE_MINUTES + 10)
    idle_before = utcnow() - timedelta(minutes=IDLE_MINUTES)
    read_by_the_sweep = session_get(session_id=session_id, consistent=True)
    # The customer writes after the sweep's read, before its close.
    assert turn_write(session_id=session_id, role="user", text="still there?", client_msg_id="late").created

    assert session_close_if_idle(meta=read_by_the_sweep, idle_before=idle_before) is False

    meta = session_get(session_id=session_id, consistent=True)
    assert meta.status == SessionStatus.ACTIVE and int(meta.turn_count) == 2
    assert sessions_idle_close().closed == []  # and the next sweep sees a recent session


def test_a_take_over_landing_between_the_read_and_the_close_wins(ddb, redis_client, broker):
    session_id = _started()
    handoff_request(session_id=session_id, reason="wants a person")
    _idle_for(session_id, IDLE_MINUTES + 10)
    read_by_the_sweep = session_get(session_id=session_id, consistent=True)
    handoff_take(session_id=session_id, username="aiko", display_name="Aiko")

    idle_before = utcnow() - timedelta(minutes=IDLE_MINUTES)
    assert session_close_if_idle(meta=read_by_the_sweep, idle_before=idle_before) is False
    assert session_get(session_id=session_id, consistent=True).owner == "aiko"


def test_a_closed_session_refuses_the_turn_that_came_too_late(ddb, redis_client, broker):
    session_id = _started(turns=1)
    _idle_for(session_id, IDLE_MINUTES + 1)
    assert sessions_idle_close().closed == [session_id]
    with pytest.raises(SessionClosed):
        turn_append(session_id=session_id, role="user", text="hello?", client_msg_id="after-close")
    assert int(session_get(session_id=session_id, consistent=True).turn_count) == 1


def test_a_session_a_staff_member_owns_is_left_to_them_and_a_waiting_one_is_closed(ddb, redis_client, broker):
    owned, waiting, just_asked = _started(turns=1), _started(turns=1), _started(turns=1)
    for session_id in (owned, waiting, just_asked):
        handoff_request(session_id=session_id, reason="wants a person")
    handoff_take(session_id=owned, username="aiko", display_name="Aiko")
    for session_id in (owned, waiting):
        _idle_for(session_id, IDLE_MINUTES + 30)
    # The customer wrote long ago, but the bot asked for a human just now: not idle.
    meta = session_get(session_id=just_asked, consistent=True)
    meta.update(actions=[SessionMeta.last_message_at.set(utcnow() - timedelta(minutes=IDLE_MINUTES + 30))])

    report = sessions_idle_close()

    assert report.closed == [waiting] and report.owned == [owned]
    assert _status(owned) == SessionStatus.HANDED_OFF and session_get(session_id=owned, consistent=True).owner == "aiko"
    assert _status(just_asked) == SessionStatus.HANDED_OFF
    closed = session_get(session_id=waiting, consistent=True)
    assert closed.status == SessionStatus.CLOSED and closed.gsi6pk is None  # out of the "needs a human" queue
    assert AuditLog.objects.get(session_id=waiting).detail["status_before"] == SessionStatus.HANDED_OFF


def test_each_run_is_bounded_and_the_next_one_goes_on(ddb, redis_client, broker):
    oldest, older = _started(hours_ago=5), _started(hours_ago=4)

    first = sessions_idle_close(limit=1)
    assert first.closed == [oldest] and first.more  # oldest start first
    second = sessions_idle_close(limit=1)
    assert second.closed == [older] and not second.more
    assert _status(oldest) == _status(older) == SessionStatus.CLOSED


def test_a_run_walks_past_long_lived_busy_sessions_to_the_idle_ones(ddb, redis_client, broker, monkeypatch):
    """The oldest open sessions may all be busy: a run reads its candidates a chunk at a time
    (BatchGetItem each) and goes on past them, instead of looking at the same oldest ones every
    time and never reaching an idle session started later."""
    from sessions_app.selectors import idle

    chunks = []
    real = idle.idle_close_candidates

    def small_chunks(**kwargs):
        for metas, more in real(**kwargs, chunk=2):
            chunks.append(len(metas))
            yield metas, more

    monkeypatch.setattr("sessions_app.services.idle_close.idle_close_candidates", small_chunks)
    busy = [_started(hours_ago=6 - n * 0.1, turns=1) for n in range(5)]  # written just now: not idle
    idle_one = _started(hours_ago=4, turns=1)
    _idle_for(idle_one, IDLE_MINUTES + 5)

    report = sessions_idle_close()

    assert report.closed == [idle_one] and not report.more
    assert chunks == [2, 2, 2]  # the five busy ones and the idle one, two at a time
    assert all(_status(s) == SessionStatus.ACTIVE for s in busy)
