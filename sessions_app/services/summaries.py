"""Writing session summaries, asking for them, and sweeping for sessions that need one.

Contract of the write (docs/architecture.md §Summaries): a summary is keyed by the last turn it covers
(``SUMMARY#<through_seq>``) and written in one TransactWriteItems with META:

- the Summary put requires ``attribute_not_exists`` — a redelivered or duplicate task computing
  the same range writes nothing new;
- META's ``summary_through`` moves only forward (``summary_through < :new``) — a slower run that
  read fewer turns can never replace a newer summary, and its put is rolled back with it.

The Redis lock in :func:`summary_generate` only saves work (two workers summarising the same
session at once); the conditions above are the guard. A run the lock turns away (BUSY) is not
dropped: the refusal marks the lock, and the holder, told so by its release, reads META again and
summarises what it has not covered yet — see :func:`summary_generate`.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.conf import settings
from pynamodb.exceptions import PynamoDBException, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from .. import dynamo, keys
from ..exceptions import QueueUnavailable, SessionNotFound, StoreUnavailable
from ..jobs import task_publish
from ..models import SessionMeta, Summary, Turn, app_write_mark
from ..observability import metrics
from ..realtime import context_cache_invalidate, summary_lock_acquire, summary_lock_release
from ..selectors.sessions import session_get
from ..selectors.summaries import (
    SummaryStates,
    meta_is_due,
    stored_summary_state,
    summary_due_candidates,
    summary_state_key,
)
from ..summarizers import Summarizer, SummarizerUnavailable, Transcript, TranscriptTurn, summarizer_get
from ..clock import utcnow
from ..ids import validate_id

log = logging.getLogger(__name__)

TASK_NAME = "sessions_app.summary_generate"
MAX_ERROR_CHARS = 500
# Rounds one run summarises for runs it turned away, before it hands the rest to a new task (each
# round summarises the whole session, and the task's time limit covers all of them).
MAX_ROUNDS = 3

class Outcome:
    WRITTEN = "written"  # a new summary item was written
    COVERED = "covered"  # the latest summary already covers the last turn: nothing to do
    DUPLICATE = "duplicate"  # a summary over exactly these turns exists (redelivery): nothing new
    SUPERSEDED = "superseded"  # a newer summary landed while this run worked: nothing written
    BUSY = "busy"  # another task holds the session's summary lock: told so, it looks again before it lets go
    EMPTY = "empty"  # no turns yet
    WRONG_REGION = "wrong_region"  # the session is written in its home region, not here: nothing written


@dataclass(frozen=True)
class SummaryOutcome:
    status: str
    session_id: str
    through_seq: int
    generator: str | None = None
    rounds: int = 0  # summaries this run computed (0: none was needed, or another task had the lock)


# --- reading what to summarise ---------------------------------------------------------------------

def transcript_read(*, meta: SessionMeta, through_seq: int) -> Transcript:
    """Turns 1..through_seq, strongly consistent (never the context cache, never DAX): the
    summary must describe exactly the turns it claims to cover."""
    turns = Turn.query(
        meta.pk, Turn.sk.between(keys.turn_sk(1), keys.turn_sk(through_seq)), consistent_read=True,
    )
    return Transcript(
        session_id=meta.session_id, locale=meta.locale or "en",
        turns=tuple(TranscriptTurn(seq=int(t.seq), role=t.role, text=t.text) for t in turns),
    )


# --- the write ------------------------------------------------------------------------------------

def summary_write(*, session_id: str, through_seq: int, text: str, generator: str, expires_at: datetime | None,
                  task_id: str | None = None, now: datetime | None = None) -> SummaryOutcome:
    """Store a summary of turns 1..through_seq (see the module docstring for the conditions).

    ``expires_at`` is the session's TTL (META's): a summary must not outlive the turns it
    describes, so it expires with them.

    Returns WRITTEN, DUPLICATE (that exact summary key exists) or SUPERSEDED (META already
    records a summary at or beyond ``through_seq``). Raises ``StoreUnavailable`` on throttling
    or a transaction conflict (retry), ``SessionNotFound`` if META is gone.
    """
    pk = keys.session_pk(session_id)
    now = now or utcnow()
    meta_probe = SessionMeta(pk, keys.META_SK)
    summary = Summary(pk, keys.summary_sk(through_seq), through_seq=through_seq, text=text, generator=generator,
                      created_at=now, task_id=task_id, expires_at=expires_at)
    try:
        with TransactWrite(connection=dynamo.connection()) as tx:
            tx.save(summary, condition=Summary.pk.does_not_exist())
            tx.update(
                meta_probe,
                actions=[
                    SessionMeta.summary_through.set(through_seq),
                    SessionMeta.summary_state.set(SummaryStates.FRESH),
                    # Stale until _due_clear finds it covers the last turn (evaluated on the item
                    # then, so an append that landed in between keeps it stale).
                    SessionMeta.gsi8pk.set(summary_state_key(session_id=session_id, state=SummaryStates.STALE)),
                    SessionMeta.summary_error.remove(),
                    SessionMeta.summary_task_id.set(task_id) if task_id else SessionMeta.summary_task_id.remove(),
                    app_write_mark(),
                ],
                condition=SessionMeta.pk.exists() & (
                    SessionMeta.summary_through.does_not_exist() | (SessionMeta.summary_through < through_seq)
                ),
            )
    except TransactWriteError as exc:
        if (err := dynamo.store_unavailable("TransactWriteItems", exc)) is not None:
            raise err from exc
        if not dynamo.is_race_lost(exc):
            raise
        # Decide from a consistent re-read, not the reasons: DAX drops CancellationReasons.
        if Summary.count(pk, Summary.sk == keys.summary_sk(through_seq), consistent_read=True):
            status = Outcome.DUPLICATE
        else:
            meta = session_get(session_id=session_id, consistent=True)
            if int(meta.summary_through or 0) < through_seq:
                raise StoreUnavailable(f"summary write for {session_id} cancelled for no visible reason; retry") from exc
            status = Outcome.SUPERSEDED
        log.info("summary of %s through %d not written: %s", session_id, through_seq, status)
        return SummaryOutcome(status=status, session_id=session_id, through_seq=through_seq, generator=generator)
    _due_clear(session_id)
    context_cache_invalidate(session_id=session_id)
    return SummaryOutcome(status=Outcome.WRITTEN, session_id=session_id, through_seq=through_seq, generator=generator)


def _due_clear(session_id: str) -> bool:
    """Take the session out of the summary_due index, and list it as fresh, if its summary covers
    its last turn. The condition is evaluated on the item, so an append that lands in between
    keeps it due (and stale). Also mends a session left out of "fresh" by an interrupted run."""
    fresh = summary_state_key(session_id=session_id, state=SummaryStates.FRESH)
    try:
        SessionMeta(keys.session_pk(session_id), keys.META_SK).update(
            actions=[SessionMeta.summary_due_pk.remove(), SessionMeta.summary_due_sk.remove(),
                     SessionMeta.gsi8pk.set(fresh), app_write_mark()],
            condition=SessionMeta.pk.exists() & (SessionMeta.turn_count <= SessionMeta.summary_through)
            & (SessionMeta.summary_due_pk.exists() | (SessionMeta.gsi8pk != fresh)),
        )
    except UpdateError as exc:
        if dynamo.is_condition_failed(exc):
            return False
        # A marker left behind costs one extra sweep look-up, never a wrong summary.
        log.warning("could not clear summary_due marker of %s: %s", session_id, exc)
        return False
    return True


def summary_generate(*, session_id: str, task_id: str | None = None,
                     summarizer: Summarizer | None = None) -> SummaryOutcome:
    """:func:`_summary_generate`, timed and counted by outcome in
    ``mangaassist_summary_task_duration_seconds``: its status (written, covered, …), ``missing``
    (the session is gone), ``retry`` (transient: the store or the summarizer is away) or
    ``failed`` (anything else)."""
    started = time.perf_counter()
    status = "failed"
    try:
        outcome = _summary_generate(session_id=session_id, task_id=task_id, summarizer=summarizer)
        status = outcome.status
        return outcome
    except SessionNotFound:
        status = "missing"
        raise
    except (StoreUnavailable, SummarizerUnavailable):
        status = "retry"
        raise
    finally:
        metrics.observe_seconds(metrics.SUMMARY_TASKS, time.perf_counter() - started, status)


def _summary_generate(*, session_id: str, task_id: str | None = None,
                      summarizer: Summarizer | None = None) -> SummaryOutcome:
    """Summarise the session's turns up to its current last turn and store the result.

    A run that finds the session's summary lock held returns BUSY, and the holder answers for it:
    the refusal marks the lock, the holder's release reports the mark, and the holder then re-reads
    META (after releasing, so it sees every turn a refused run saw) and, if turns are uncovered,
    takes the lock again for another round — at most ``MAX_ROUNDS``, then it requests a new task.
    If the lock is taken by then, this run's own refusal marks it for the new holder.

    Idempotent: re-running after success finds the summary covering the last turn (COVERED) or
    the same key taken (DUPLICATE) and writes nothing. Reads META and turns strongly consistent.
    Raises ``SessionNotFound``; ``StoreUnavailable`` / ``SummarizerUnavailable`` (transient:
    retry); ``SummarizerError`` (permanent).
    """
    validate_id(session_id, field="session_id")
    token = task_id or uuid.uuid4().hex
    ttl = int(settings.SUMMARY_TIME_LIMIT) + 30
    try:
        meta = session_get(session_id=session_id, consistent=True)
        if not meta.writable_here:
            # Summary and META are written together: in a region that does not own the session
            # that write could overwrite a concurrent append's META (global tables: last writer
            # wins). Not an error to retry: the home region summarises it.
            log.info("summary of %s not written here: its home region is %s", session_id, meta.home_region)
            return SummaryOutcome(status=Outcome.WRONG_REGION, session_id=session_id,
                                  through_seq=int(meta.summary_through or 0))
        if (nothing := _nothing_to_summarise(meta)) is not None:
            return nothing
        if not summary_lock_acquire(session_id=session_id, token=token, ttl_seconds=ttl):
            log.info("summary of %s already being generated by another task, which was told to look again", session_id)
            return SummaryOutcome(status=Outcome.BUSY, session_id=session_id, through_seq=int(meta.summary_through or 0))
        rounds = 0
        while True:
            try:
                outcome = _summary_round(meta=meta, task_id=task_id, summarizer=summarizer)
            finally:
                refused = summary_lock_release(session_id=session_id, token=token)
            rounds += 1
            outcome = replace(outcome, rounds=rounds)
            if not refused:
                return outcome
            meta = session_get(session_id=session_id, consistent=True)
            if _nothing_to_summarise(meta) is not None:
                return outcome
            if rounds >= MAX_ROUNDS:
                summary_request(session_id=session_id, reason="requested_while_busy")
                return outcome
            if not summary_lock_acquire(session_id=session_id, token=token, ttl_seconds=ttl):
                return outcome
    except PynamoDBException as exc:
        if (err := dynamo.store_unavailable(type(exc).__name__, exc)) is not None:
            raise err from exc
        raise


def _nothing_to_summarise(meta: SessionMeta) -> SummaryOutcome | None:
    """EMPTY or COVERED (clearing a left-over due marker) when META needs no summary, else None."""
    through = int(meta.turn_count or 0)
    if through == 0:
        return SummaryOutcome(status=Outcome.EMPTY, session_id=meta.session_id, through_seq=0)
    if int(meta.summary_through or 0) >= through:
        _due_clear(meta.session_id)
        return SummaryOutcome(status=Outcome.COVERED, session_id=meta.session_id, through_seq=int(meta.summary_through))
    return None


def _summary_round(*, meta: SessionMeta, task_id: str | None, summarizer: Summarizer | None) -> SummaryOutcome:
    """Summarise turns 1..META's turn count and write it (the caller holds the lock)."""
    through = int(meta.turn_count)
    transcript = transcript_read(meta=meta, through_seq=through)
    result = (summarizer or summarizer_get()).summarize(transcript)
    return summary_write(session_id=meta.session_id, through_seq=through, text=result.text,
                         generator=result.generator, expires_at=meta.expires_at, task_id=task_id)


# --- requests and task bookkeeping ----------------------------------------------------------------

def summary_request(*, session_id: str, reason: str) -> str | None:
    """Enqueue a summary of the session. Returns the task id, or None if it could not be enqueued.

    Never raises: it runs after an append or a close has been stored, and a summary is never worth
    failing those for. Broker down → logged, counted (``mangaassist_task_enqueue_failures_total``), and the
    sweep asks again once the session is idle.

    META is marked pending for this task id *before* the task is published: a fast worker's
    retry and failure records (``summary_mark_attempt``) must land after it, or the pending mark
    would overwrite them (a failed summary shown as pending, its retries reset to 0). Marking is
    best effort and guarded, so it cannot mark a session whose summary already covers its last
    turn; if publishing then fails, the mark is taken back (only while it is still this task's).
    """
    task_id = uuid.uuid4().hex
    marked = _pending_mark(session_id=session_id, task_id=task_id)
    try:
        task_publish(name=TASK_NAME, args=[session_id], task_id=task_id)
    except QueueUnavailable as exc:  # counted by jobs.task_publish (mangaassist_task_enqueue_failures_total)
        log.warning("could not enqueue summary of %s (%s): %s", session_id, reason, exc)
        if marked:
            _pending_unmark(session_id=session_id, task_id=task_id, error=exc.message)
        return None
    log.info("summary of %s requested (%s): task %s", session_id, reason, task_id)
    return task_id


def _meta_update_best_effort(*, session_id: str, what: str, actions: list, condition) -> bool:
    """One guarded META update whose failure only costs the console a less precise state.
    Returns whether it applied."""
    try:
        SessionMeta(keys.session_pk(session_id), keys.META_SK).update(actions=[*actions, app_write_mark()],
                                                                    condition=condition)
    except UpdateError as exc:
        if not dynamo.is_condition_failed(exc):
            log.warning("could not %s for %s: %s", what, session_id, exc)
        return False
    except Exception as exc:  # StoreUnavailable and friends: the summary itself is unaffected
        log.warning("could not %s for %s: %s", what, session_id, exc)
        return False
    return True


def _pending_mark(*, session_id: str, task_id: str) -> bool:
    return _meta_update_best_effort(
        session_id=session_id, what="mark the summary pending",
        actions=[
            SessionMeta.summary_state.set(SummaryStates.PENDING),
            SessionMeta.gsi8pk.set(summary_state_key(session_id=session_id, state=SummaryStates.PENDING)),
            SessionMeta.summary_task_id.set(task_id),
            SessionMeta.summary_requested_at.set(utcnow()),
            SessionMeta.summary_retries.set(0),
            SessionMeta.summary_error.remove(),
        ],
        condition=SessionMeta.pk.exists() & (SessionMeta.summary_through < SessionMeta.turn_count),
    )


def _pending_unmark(*, session_id: str, task_id: str, error: str) -> bool:
    """The task was never queued: nothing is pending. Says why on META, for the console.

    The state it falls back to depends on what was summarised, so META is read first and the
    update is guarded by that coverage (a failed publish is rare; one GetItem is cheap)."""
    try:
        meta = session_get(session_id=session_id, consistent=True)
    except Exception as exc:  # SessionNotFound, StoreUnavailable: nothing to take back, or not now
        log.warning("could not take back the pending mark for %s: %s", session_id, exc)
        return False
    through = int(meta.summary_through or 0)
    state = stored_summary_state(turn_count=meta.turn_count, summary_through=through, summary_state=None)
    return _meta_update_best_effort(
        session_id=session_id, what="take back the pending mark",
        actions=[
            SessionMeta.summary_state.remove(),
            SessionMeta.gsi8pk.set(summary_state_key(session_id=session_id, state=state)),
            SessionMeta.summary_task_id.remove(),
            SessionMeta.summary_requested_at.remove(),
            SessionMeta.summary_retries.remove(),
            SessionMeta.summary_error.set(f"not queued: {error}"[:MAX_ERROR_CHARS]),
        ],
        condition=SessionMeta.pk.exists() & (SessionMeta.summary_task_id == task_id)
        & (SessionMeta.summary_through == through),
    )


def summary_mark_attempt(*, session_id: str, task_id: str, retries: int, error: str, failed: bool) -> None:
    """Record a retry (or the final failure) on META for the console. Only for the task META
    currently points at, so an old task's failure can't hide a newer request. Best effort."""
    actions = [
        SessionMeta.summary_retries.set(retries),
        SessionMeta.summary_error.set(error[:MAX_ERROR_CHARS]),
    ]
    if failed:
        actions += [SessionMeta.summary_state.set(SummaryStates.FAILED),
                    SessionMeta.gsi8pk.set(summary_state_key(session_id=session_id, state=SummaryStates.FAILED))]
    _meta_update_best_effort(
        session_id=session_id, what="record a summary attempt", actions=actions,
        # Monotonic retries: on_retry of attempt n can run after attempt n+1 started (the
        # retry is published first), so an older report must not overwrite a newer one.
        condition=SessionMeta.pk.exists() & (SessionMeta.summary_task_id == task_id)
        & (SessionMeta.summary_through < SessionMeta.turn_count)
        & (SessionMeta.summary_retries.does_not_exist() | (SessionMeta.summary_retries <= retries)),
    )


@dataclass(frozen=True)
class SweepReport:
    requested: list[str]  # enqueued now
    pending: list[str]  # due, but a request is still in flight
    cleared: list[str]  # were marked due but are covered: marker removed
    not_queued: list[str]  # due, but the broker refused


def summary_sweep(*, now: datetime | None = None, limit: int = 1000) -> SweepReport:
    """Request summaries for sessions idle longer than ``SUMMARY_IDLE_MINUTES`` whose summary does
    not cover their last turn (found through the summary_due index; never a Scan).

    A session with a request younger than ``SUMMARY_PENDING_MINUTES`` is left alone, so a slow
    queue is not flooded with one more request per sweep. Safe to run concurrently with itself:
    duplicate requests are harmless (the task is idempotent).
    """
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.SUMMARY_IDLE_MINUTES)
    pending_since = now - timedelta(minutes=settings.SUMMARY_PENDING_MINUTES)
    requested, pending, cleared, not_queued = [], [], [], []
    for meta in summary_due_candidates(marked_before=cutoff, limit=limit):
        if not meta.writable_here:
            continue  # a replica of another region's session: its home region's sweep has it
        if int(meta.turn_count or 0) <= int(meta.summary_through or 0):
            if _due_clear(meta.session_id):
                cleared.append(meta.session_id)
            continue
        if not meta_is_due(meta=meta, idle_cutoff=cutoff):
            continue
        if meta.summary_state == SummaryStates.PENDING and meta.summary_requested_at and meta.summary_requested_at > pending_since:
            pending.append(meta.session_id)
            continue
        if summary_request(session_id=meta.session_id, reason="idle_sweep"):
            requested.append(meta.session_id)
        else:
            not_queued.append(meta.session_id)
    return SweepReport(requested=requested, pending=pending, cleared=cleared, not_queued=not_queued)
