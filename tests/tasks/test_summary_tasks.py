"""Summary tasks in a real Celery worker (in-process thread worker) on the real Redis broker."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from botocore.exceptions import ClientError
from django.conf import settings as django_settings

from devtools import procs
from mangaassist.celery import app as celery_app
from sessions_app import dynamo
from sessions_app.keys import ts_str
from sessions_app.models import SessionMeta
from sessions_app.observability import metrics
from sessions_app.selectors.summaries import SummaryStates, summary_state
from sessions_app.services import summaries
from sessions_app.clock import utcnow
from sessions_app.services.sessions import session_close
from sessions_app.services.summaries import TASK_NAME, summary_write
from sessions_app.services.turns import turn_append
from tests.builders import make_session, msg_id

from tests.fixtures.celery_workers import meta_of, poll, summaries_of, use_broker, wait_for


def _append(session_id: str, n: int) -> None:
    for _ in range(n):
        turn_append(session_id=session_id, role="user", text="Do you have One Piece vol. 3?", client_msg_id=msg_id())


def _through(session_id: str) -> int:
    return int(meta_of(session_id).summary_through or 0)


def test_every_n_turns_enqueues_a_summary_that_a_worker_writes(worker, settings):
    settings.SUMMARY_EVERY_N_TURNS = 3
    meta = make_session(turns=0)
    _append(meta.session_id, 3)
    wait_for(lambda: _through(meta.session_id) == 3, what="the summary through turn 3")
    _append(meta.session_id, 2)
    worker.wait_idle()
    assert _through(meta.session_id) == 3  # 5 turns: not due yet
    _append(meta.session_id, 1)
    wait_for(lambda: _through(meta.session_id) == 6, what="the summary through turn 6")
    worker.wait_idle()
    assert [int(s.through_seq) for s in summaries_of(meta.session_id)] == [3, 6]
    assert "One Piece (vol. 3)" in summaries_of(meta.session_id)[-1].text
    assert summary_state(meta=meta_of(meta.session_id)).state == SummaryStates.FRESH


def test_close_enqueues_a_final_summary(worker):
    meta = make_session(turns=5)  # written without triggers
    session_close(session_id=meta.session_id)
    wait_for(lambda: _through(meta.session_id) == 5, what="the closing summary")
    session_close(session_id=meta.session_id)  # already closed: no new request
    worker.wait_idle()
    assert len(summaries_of(meta.session_id)) == 1
    assert meta_of(meta.session_id).summary_due_pk is None


def _age(session_id: str, minutes: int) -> None:
    """Test setup: make the session look idle for ``minutes`` (its last message and the due
    marker moved back in time)."""
    past = utcnow() - timedelta(minutes=minutes)
    meta = meta_of(session_id)
    actions = [SessionMeta.last_message_at.set(past)]
    if meta.summary_due_sk is not None:
        actions.append(SessionMeta.summary_due_sk.set(ts_str(past - timedelta(minutes=5))))
    meta.update(actions=actions)


@pytest.fixture
def sweep_sessions(ddb, settings):
    """A: idle, never summarised. B: idle, summary covers it. C: unsummarised but active now.
    D: idle, summary covers only some turns. E: idle, a request is already in flight."""
    settings.SUMMARY_IDLE_MINUTES = 15
    s = {name: make_session(turns=4, customer_id=f"cust-{name}").session_id for name in "ABCDE"}
    summaries.summary_generate(session_id=s["B"])
    summary_write(session_id=s["D"], through_seq=2, text="partial", generator="g", expires_at=meta_of(s["D"]).expires_at)
    meta = meta_of(s["E"])
    meta.update(actions=[SessionMeta.summary_state.set("pending"), SessionMeta.summary_requested_at.set(utcnow())])
    for name in "ABDE":
        _age(s[name], 30)
    return s


def test_sweep_requests_exactly_the_idle_uncovered_sessions(sweep_sessions, broker, broker_redis):
    s = sweep_sessions
    report = summaries.summary_sweep()
    assert sorted(report.requested) == sorted([s["A"], s["D"]])
    assert report.pending == [s["E"]]
    assert broker_redis.llen("celery") == 2
    # A second sweep right after does not pile up requests for the same sessions.
    assert summaries.summary_sweep().requested == []


def test_beat_sweep_task_in_a_worker_summarises_exactly_the_stale_sessions(sweep_sessions, worker):
    s = sweep_sessions
    celery_app.send_task("sessions_app.summary_sweep")
    wait_for(lambda: _through(s["A"]) == 4 and _through(s["D"]) == 4, what="summaries of A and D")
    worker.wait_idle()
    assert [int(x.through_seq) for x in summaries_of(s["A"])] == [4]
    assert [int(x.through_seq) for x in summaries_of(s["D"])] == [2, 4]
    assert [int(x.through_seq) for x in summaries_of(s["B"])] == [4]
    assert summaries_of(s["C"]) == [] and summaries_of(s["E"]) == []


def test_beat_schedule_runs_the_sweep_task():
    entry = django_settings.CELERY_BEAT_SCHEDULE["summary-sweep"]
    assert entry["task"] in celery_app.tasks
    assert entry["schedule"] == float(django_settings.SUMMARY_SWEEP_SECONDS)


def test_same_task_delivered_five_times_concurrently_writes_one_summary(worker, gated):
    meta = make_session(turns=7)
    for _ in range(5):
        celery_app.send_task(TASK_NAME, args=[meta.session_id], task_id="dup-task-1")
    # All five runs are inside the summarizer at the same time (the lock lets the same task id in).
    wait_for(lambda: len(gated.arrived()) == 5, what="five concurrent runs")
    gated.open()
    worker.wait_idle()
    [item] = summaries_of(meta.session_id)
    assert (int(item.through_seq), item.task_id) == (7, "dup-task-1")
    assert _through(meta.session_id) == 7


def test_five_different_requests_at_once_write_one_summary(worker, gated):
    from celery.worker import state

    meta = make_session(turns=7)
    ids = [summaries.summary_request(session_id=meta.session_id, reason="test") for _ in range(5)]
    assert all(ids)
    # One run is inside the summarizer holding the lock; the other four have finished (busy).
    wait_for(lambda: len(gated.arrived()) == 1 and len(state.reserved_requests) == 1, what="one run holding the lock")
    gated.open()
    worker.wait_idle()
    assert len(gated.arrived()) == 1  # the other four saw the lock and left the work to it
    assert [int(x.through_seq) for x in summaries_of(meta.session_id)] == [7]


def test_transient_dynamodb_error_is_retried_then_succeeds(worker):
    meta = make_session(turns=3)
    calls = []

    def throttle_first_two(**kwargs):
        calls.append(kwargs.get("model").name)
        if len(calls) <= 2:
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}},
                              "TransactWriteItems")

    events = dynamo.connection().client.meta.events
    events.register("before-call.dynamodb.TransactWriteItems", throttle_first_two, unique_id="test-throttle")
    try:
        task_id = summaries.summary_request(session_id=meta.session_id, reason="test")
        wait_for(lambda: _through(meta.session_id) == 3, timeout=30, what="the summary after two throttles")
        worker.wait_idle()
    finally:
        events.unregister("before-call.dynamodb.TransactWriteItems", unique_id="test-throttle")
    assert len(calls) == 3
    stored = meta_of(meta.session_id)
    assert (int(stored.summary_retries), stored.summary_task_id, stored.summary_error) == (2, task_id, None)
    assert len(summaries_of(meta.session_id)) == 1


def _enqueue_failures() -> float:
    return metrics.sample_value("mangaassist_task_enqueue_failures_total", task=summaries.TASK_NAME)


def test_broker_down_does_not_fail_the_append_and_the_sweep_catches_up(ddb, broker, broker_redis, settings):
    settings.SUMMARY_EVERY_N_TURNS = 2
    meta = make_session(turns=0)
    before = _enqueue_failures()
    use_broker(f"redis://127.0.0.1:{procs.free_port()}/1")  # nothing listens there
    try:
        _append(meta.session_id, 4)  # two triggers, both fail to enqueue
    finally:
        use_broker(None)
    assert int(meta_of(meta.session_id).turn_count) == 4
    assert _enqueue_failures() == before + 2
    assert meta_of(meta.session_id).summary_state is None  # never marked pending
    later = utcnow() + timedelta(minutes=settings.SUMMARY_IDLE_MINUTES + 1)
    report = summaries.summary_sweep(now=later)
    assert report.requested == [meta.session_id], report
    assert broker_redis.llen("celery") == 1




# --- requests refused as busy ---------------------------------------------------------------------

def test_requests_refused_while_a_long_summary_runs_are_served_by_the_lock_holder(worker, gated, task_returns, settings):
    """The holder summarises turns 1-10 while 20 more arrive and six requests find it busy: it
    must come back for them itself, without the idle sweep (which no worker here runs)."""
    settings.SUMMARY_EVERY_N_TURNS = 5
    meta = make_session(turns=10)
    holder = summaries.summary_request(session_id=meta.session_id, reason="test")
    wait_for(lambda: len(gated.arrived()) == 1, what="the first run inside the summarizer, holding the lock")
    _append(meta.session_id, 20)  # requests at turns 15, 20, 25 and 30
    again = [summaries.summary_request(session_id=meta.session_id, reason="test") for _ in range(2)]
    wait_for(lambda: len(task_returns.with_status("busy")) == 6, what="six requests refused as busy")
    assert {tid for tid, _ in task_returns.with_status("busy")} >= set(again)
    assert summaries_of(meta.session_id) == []
    gated.open()
    wait_for(lambda: _through(meta.session_id) == 30, what="a summary through the last turn")
    worker.wait_idle()
    assert [int(s.through_seq) for s in summaries_of(meta.session_id)] == [10, 30]
    assert task_returns.of(holder) == [{"status": "written", "session_id": meta.session_id, "through_seq": 30, "rounds": 2}]
    assert len(gated.arrived()) == 2  # one summarizer call per round, not one per request
    stored = meta_of(meta.session_id)
    assert summary_state(meta=stored).state == SummaryStates.FRESH and stored.summary_due_pk is None


def test_a_request_refused_just_before_the_holder_lets_go_is_still_served(worker, task_returns):
    """The boundary: a turn lands and its request is refused after the holder has read and
    written everything it will write, just before it releases the lock."""
    from pynamodb.signals import post_dynamodb_send

    meta = make_session(turns=4)
    main = threading.current_thread()
    late: dict[str, object] = {}

    def after_the_holders_write(sender, operation_name, table_name, req_uuid):
        if operation_name != "TransactWriteItems" or threading.current_thread() is main or late:
            return
        late["thread"] = threading.current_thread()  # the holder, between its summary write and its release
        _append(meta.session_id, 1)
        late["request"] = summaries.summary_request(session_id=meta.session_id, reason="test")
        # Not wait_for: this runs in the worker's thread; the test asserts on what it saw.
        late["returned"] = poll(lambda: task_returns.of(late["request"]))

    post_dynamodb_send.connect(after_the_holders_write, weak=False)
    try:
        holder = summaries.summary_request(session_id=meta.session_id, reason="test")
        wait_for(lambda: "returned" in late, what="the late request to be answered while the holder waits")
        wait_for(lambda: _through(meta.session_id) == 5, what="a summary through the late turn")
        worker.wait_idle()
    finally:
        post_dynamodb_send.disconnect(after_the_holders_write)
    assert late["returned"] == [{"status": "busy", "session_id": meta.session_id, "through_seq": 4, "rounds": 0}]
    assert [int(s.through_seq) for s in summaries_of(meta.session_id)] == [4, 5]
    assert task_returns.of(holder) == [{"status": "written", "session_id": meta.session_id, "through_seq": 5, "rounds": 2}]


def test_a_holder_out_of_rounds_hands_the_refused_requests_to_a_new_task(worker, gated, task_returns, monkeypatch):
    monkeypatch.setattr(summaries, "MAX_ROUNDS", 1)
    meta = make_session(turns=3)
    holder = summaries.summary_request(session_id=meta.session_id, reason="test")
    wait_for(lambda: len(gated.arrived()) == 1, what="the first run inside the summarizer")
    _append(meta.session_id, 2)
    refused = summaries.summary_request(session_id=meta.session_id, reason="test")
    wait_for(lambda: task_returns.of(refused), what="the second request to be refused")
    gated.open()
    wait_for(lambda: _through(meta.session_id) == 5, what="a summary through the last turn")
    worker.wait_idle()
    assert task_returns.of(holder) == [{"status": "written", "session_id": meta.session_id, "through_seq": 3, "rounds": 1}]
    [(successor, _)] = [(tid, r) for tid, r in task_returns.with_status("written") if tid not in (holder, refused)]
    assert task_returns.of(successor) == [{"status": "written", "session_id": meta.session_id, "through_seq": 5, "rounds": 1}]
    assert [int(s.through_seq) for s in summaries_of(meta.session_id)] == [3, 5]
    assert meta_of(meta.session_id).summary_task_id == successor
