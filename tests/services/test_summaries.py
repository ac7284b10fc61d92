"""The summary write and its bookkeeping, on DynamoDB Local (no worker needed)."""

from __future__ import annotations

import json
from datetime import timedelta

from sessions_app import keys
from sessions_app.realtime import context_cache_get, summary_lock_acquire, summary_lock_release
from sessions_app.realtime.keys import summary_lock_key
from sessions_app.selectors.context import context_load
from sessions_app.selectors.summaries import SummaryStates, summary_state
from sessions_app.services import summaries
from sessions_app.clock import utcnow
from sessions_app.services.summaries import Outcome, summary_generate, summary_write
from sessions_app.services.turns import turn_append, turn_write
from sessions_app.summarizers.extractive import ExtractiveSummarizer
from tests.builders import make_session, msg_id

from tests.fixtures.celery_workers import meta_of, summaries_of


def test_generate_writes_a_summary_recording_range_generator_and_time(ddb, redis_client):
    meta = make_session(turns=4)
    before = utcnow()
    outcome = summary_generate(session_id=meta.session_id, task_id="t-1")
    assert (outcome.status, outcome.through_seq) == (Outcome.WRITTEN, 4)
    [item] = summaries_of(meta.session_id)
    assert item.sk == keys.summary_sk(4)
    assert (int(item.through_seq), item.generator, item.task_id) == (4, "extractive-v1", "t-1")
    assert item.created_at >= before
    stored = meta_of(meta.session_id)
    assert (int(stored.summary_through), stored.summary_state, stored.summary_task_id) == (4, "fresh", "t-1")


def test_rerun_over_the_same_turns_writes_nothing_new(ddb, redis_client):
    meta = make_session(turns=3)
    assert summary_generate(session_id=meta.session_id).status == Outcome.WRITTEN
    assert summary_generate(session_id=meta.session_id).status == Outcome.COVERED
    # A redelivered task that had read the same turns tries the same key: refused.
    again = summary_write(session_id=meta.session_id, through_seq=3, text="other", generator="x", expires_at=meta.expires_at)
    assert again.status == Outcome.DUPLICATE
    [item] = summaries_of(meta.session_id)
    assert item.generator == "extractive-v1"


def test_a_slower_run_over_fewer_turns_never_replaces_a_newer_summary(ddb, redis_client):
    meta = make_session(turns=6)
    assert summary_write(session_id=meta.session_id, through_seq=6, text="newer", generator="g", expires_at=meta.expires_at).status == Outcome.WRITTEN
    late = summary_write(session_id=meta.session_id, through_seq=4, text="older", generator="g", expires_at=meta.expires_at)
    assert late.status == Outcome.SUPERSEDED
    assert [int(s.through_seq) for s in summaries_of(meta.session_id)] == [6]  # the put rolled back with it
    assert int(meta_of(meta.session_id).summary_through) == 6


def test_empty_session_is_not_an_error(ddb, redis_client):
    meta = make_session(turns=0)
    assert summary_generate(session_id=meta.session_id).status == Outcome.EMPTY
    assert summaries_of(meta.session_id) == []


def test_summary_appears_in_the_context_response_and_the_cached_context_is_dropped(ddb, redis_client):
    meta = make_session(turns=2)
    first = context_load(session_id=meta.session_id)
    assert b'"summary":null' in first.payload
    assert context_cache_get(session_id=meta.session_id, variant="t20").payload is not None
    summary_generate(session_id=meta.session_id)
    assert context_cache_get(session_id=meta.session_id, variant="t20").payload is None
    body = json.loads(context_load(session_id=meta.session_id).payload)
    assert body["summary"]["through_seq"] == 2
    assert body["summary"]["generator"] == "extractive-v1"
    assert body["summary"]["text"].startswith("Customer wanted:")
    assert body["summary"]["created_at"].endswith("Z")


def test_due_marker_is_set_once_per_unsummarised_stretch_and_cleared_when_covered(ddb, redis_client, settings):
    settings.SUMMARY_EVERY_N_TURNS = 1000  # no enqueue in this test
    meta = make_session(turns=0)
    assert meta_of(meta.session_id).summary_due_pk is None
    turn_append(session_id=meta.session_id, role="user", text="hi", client_msg_id=msg_id())
    marked = meta_of(meta.session_id)
    assert marked.summary_due_pk.startswith("DUE#")
    turn_append(session_id=meta.session_id, role="assistant", text="hello", client_msg_id=msg_id())
    assert meta_of(meta.session_id).summary_due_sk == marked.summary_due_sk  # if_not_exists: not rewritten
    summary_generate(session_id=meta.session_id)
    cleared = meta_of(meta.session_id)
    assert cleared.summary_due_pk is None and cleared.summary_due_sk is None
    turn_append(session_id=meta.session_id, role="user", text="one more", client_msg_id=msg_id())
    again = meta_of(meta.session_id)
    assert again.summary_due_pk is not None and again.summary_due_sk > marked.summary_due_sk


def test_due_marker_stays_when_a_turn_lands_after_the_summary_read(ddb, redis_client):
    meta = make_session(turns=0)
    from sessions_app.services.turns import turn_write

    turn_write(session_id=meta.session_id, role="user", text="a", client_msg_id="a")
    turn_write(session_id=meta.session_id, role="user", text="b", client_msg_id="b")
    # A run that read only turn 1 writes its summary after turn 2 landed.
    assert summary_write(session_id=meta.session_id, through_seq=1, text="s", generator="g", expires_at=meta.expires_at).status == Outcome.WRITTEN
    assert meta_of(meta.session_id).summary_due_pk is not None


def test_summary_state_walks_none_pending_fresh_stale_failed(ddb, redis_client, broker):
    meta = make_session(turns=0)
    state = summary_state(meta=meta_of(meta.session_id))
    assert (state.state, state.covered_label) == (SummaryStates.NONE, "no turns summarised of 0")
    from sessions_app.services.turns import turn_write

    for n in range(3):
        turn_write(session_id=meta.session_id, role="user", text=f"t{n}", client_msg_id=f"m{n}")
    task_id = summaries.summary_request(session_id=meta.session_id, reason="test")
    state = summary_state(meta=meta_of(meta.session_id))
    assert (state.state, state.task_id) == (SummaryStates.PENDING, task_id)
    summary_generate(session_id=meta.session_id, task_id=task_id)
    state = summary_state(meta=meta_of(meta.session_id))
    assert (state.state, state.covered_label) == (SummaryStates.FRESH, "turns 1–3 of 3")
    turn_write(session_id=meta.session_id, role="user", text="later", client_msg_id="m9")
    state = summary_state(meta=meta_of(meta.session_id))
    assert (state.state, state.covered_label) == (SummaryStates.STALE, "turns 1–3 of 4")
    task_id = summaries.summary_request(session_id=meta.session_id, reason="test")
    summaries.summary_mark_attempt(session_id=meta.session_id, task_id=task_id, retries=1, error="StoreUnavailable: x", failed=False)
    state = summary_state(meta=meta_of(meta.session_id))
    assert (state.state, state.retries, state.error) == (SummaryStates.PENDING, 1, "StoreUnavailable: x")
    summaries.summary_mark_attempt(session_id=meta.session_id, task_id=task_id, retries=6, error="boom", failed=True)
    state = summary_state(meta=meta_of(meta.session_id))
    assert (state.state, state.retries, state.error) == (SummaryStates.FAILED, 6, "boom")
    # A pending request nobody answered for too long is shown as stale, not pending forever.
    summaries.summary_request(session_id=meta.session_id, reason="test")
    later = utcnow() + timedelta(minutes=120)
    assert summary_state(meta=meta_of(meta.session_id), now=later).state == SummaryStates.STALE


def test_an_old_tasks_failure_does_not_mark_a_newer_request_failed(ddb, redis_client, broker):
    meta = make_session(turns=2)
    old = summaries.summary_request(session_id=meta.session_id, reason="test")
    new = summaries.summary_request(session_id=meta.session_id, reason="test")
    summaries.summary_mark_attempt(session_id=meta.session_id, task_id=old, retries=6, error="boom", failed=True)
    state = summary_state(meta=meta_of(meta.session_id))
    assert (state.state, state.task_id, state.error) == (SummaryStates.PENDING, new, None)


def test_a_fast_workers_records_are_never_overwritten_by_the_request(ddb, redis_client, monkeypatch):
    """The broker hands the task to a worker that retries twice and gives up before the request
    returns: its records must stand (the request marks META pending before it publishes)."""
    meta = make_session(turns=3)
    published = []

    def publish_then_fail_fast(*, name, args, task_id):
        published.append(task_id)
        summaries.summary_mark_attempt(session_id=args[0], task_id=task_id, retries=1, error="e1", failed=False)
        summaries.summary_mark_attempt(session_id=args[0], task_id=task_id, retries=2, error="e2", failed=True)

    monkeypatch.setattr(summaries, "task_publish", publish_then_fail_fast)
    task_id = summaries.summary_request(session_id=meta.session_id, reason="test")
    assert published == [task_id]
    state = summary_state(meta=meta_of(meta.session_id))
    assert (state.state, state.task_id, state.retries, state.error) == (SummaryStates.FAILED, task_id, 2, "e2")


def test_a_request_the_broker_refused_leaves_nothing_pending_and_says_why(ddb, redis_client, monkeypatch):
    from sessions_app.exceptions import QueueUnavailable

    meta = make_session(turns=2)

    def refuse(*, name, args, task_id):
        raise QueueUnavailable("could not publish: ConnectionError: refused")

    monkeypatch.setattr(summaries, "task_publish", refuse)
    assert summaries.summary_request(session_id=meta.session_id, reason="test") is None
    stored = meta_of(meta.session_id)
    assert (stored.summary_state, stored.summary_task_id, stored.summary_requested_at) == (None, None, None)
    assert stored.summary_error.startswith("not queued: could not publish")
    assert summary_state(meta=stored).state == SummaryStates.NONE


# --- a run refused as busy: the holder serves it --------------------------------------------------

class _RequestDuringSummary:
    """A summarizer during whose first call another run asks for a summary of the same session
    (after ``new_turns`` more turns landed) and is refused: the lock is held by the caller."""

    def __init__(self, *, session_id: str, new_turns: int) -> None:
        self.session_id, self.new_turns = session_id, new_turns
        self.calls: list[int] = []
        self.refused = None

    def summarize(self, transcript):
        self.calls.append(transcript.through_seq)
        if self.refused is None:
            for _ in range(self.new_turns):
                turn_write(session_id=self.session_id, role="user", text="and vol. 4?", client_msg_id=msg_id())
            self.refused = summary_generate(session_id=self.session_id, task_id="second")
        return ExtractiveSummarizer().summarize(transcript)


def test_a_run_refused_during_the_summary_is_served_by_the_holders_next_round(ddb, redis_client):
    meta = make_session(turns=3)
    summarizer = _RequestDuringSummary(session_id=meta.session_id, new_turns=2)
    outcome = summary_generate(session_id=meta.session_id, task_id="first", summarizer=summarizer)
    assert [int(s.through_seq) for s in summaries_of(meta.session_id)] == [3, 5]
    assert summarizer.calls == [3, 5]
    assert (summarizer.refused.status, summarizer.refused.rounds) == (Outcome.BUSY, 0)
    assert (outcome.status, outcome.through_seq, outcome.rounds) == (Outcome.WRITTEN, 5, 2)
    assert not redis_client.exists(summary_lock_key(session_id=meta.session_id))


def test_a_refused_run_whose_turns_the_holder_covered_costs_no_second_summary(ddb, redis_client):
    meta = make_session(turns=3)
    summarizer = _RequestDuringSummary(session_id=meta.session_id, new_turns=0)
    outcome = summary_generate(session_id=meta.session_id, task_id="first", summarizer=summarizer)
    assert summarizer.refused.status == Outcome.BUSY
    assert (outcome.status, outcome.through_seq, outcome.rounds) == (Outcome.WRITTEN, 3, 1)
    assert summarizer.calls == [3]


def test_a_refused_run_marks_the_lock_for_its_holder_and_keeps_its_expiry(ddb, redis_client):
    meta = make_session(turns=2)
    assert summary_lock_acquire(session_id=meta.session_id, token="holder", ttl_seconds=60)
    assert summary_generate(session_id=meta.session_id, task_id="other").status == Outcome.BUSY
    assert summary_generate(session_id=meta.session_id, task_id="third").status == Outcome.BUSY
    assert 0 < redis_client.ttl(summary_lock_key(session_id=meta.session_id)) <= 60
    assert summary_lock_acquire(session_id=meta.session_id, token="holder", ttl_seconds=60)  # its own: still in
    assert summary_lock_release(session_id=meta.session_id, token="other") is False  # not the holder: nothing
    assert summary_lock_release(session_id=meta.session_id, token="holder") is True  # someone was refused
    assert summary_lock_acquire(session_id=meta.session_id, token="other", ttl_seconds=60)
    assert summary_lock_release(session_id=meta.session_id, token="other") is False  # nobody was refused


