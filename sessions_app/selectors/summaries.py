"""Reads for session summaries: the console's summary state, and the sessions due for one.

The due list comes from the sparse ``summary_due`` index (one Query per shard, never a Scan): a
session is in it from its first unsummarised turn until a summary covers its last turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from .. import dynamo, keys
from ..models import SessionMeta
from ..clock import utcnow


class SummaryStates:
    NONE = "none"  # never summarised, nothing requested
    PENDING = "pending"  # a task was enqueued and has not finished
    FRESH = "fresh"  # the latest summary covers the last turn
    STALE = "stale"  # turns arrived after the latest summary
    FAILED = "failed"  # the last run gave up (error below); the sweep will ask again


SUMMARY_STATES = (SummaryStates.NONE, SummaryStates.PENDING, SummaryStates.FRESH, SummaryStates.STALE,
                  SummaryStates.FAILED)


@dataclass(frozen=True)
class SummaryState:
    state: str
    through_seq: int  # last turn the latest summary covers (0: none)
    turn_count: int
    task_id: str | None
    retries: int
    error: str | None
    requested_at: datetime | None

    @property
    def covered_label(self) -> str:
        """"turns 1–42 of 45", for the console."""
        if self.through_seq <= 0:
            return f"no turns summarised of {self.turn_count}"
        return f"turns 1–{self.through_seq} of {self.turn_count}"


def stored_summary_state(*, turn_count: int, summary_through: int, summary_state: str | None) -> str:
    """The state a session is indexed under (by_summary_state): :func:`summary_state` without the
    clock. Coverage decides fresh; else a failed or pending mark; else stale once anything was
    summarised, none before. Pure: the writers compute the key from what they write."""
    count, through = int(turn_count or 0), int(summary_through or 0)
    if count > 0 and through >= count:
        return SummaryStates.FRESH
    if summary_state in (SummaryStates.FAILED, SummaryStates.PENDING):
        return summary_state
    return SummaryStates.STALE if through > 0 else SummaryStates.NONE


def meta_stored_summary_state(meta: SessionMeta) -> str:
    return stored_summary_state(turn_count=meta.turn_count, summary_through=meta.summary_through,
                                summary_state=meta.summary_state)


def summary_state_key(*, session_id: str, state: str) -> str:
    """META's by_summary_state partition key while the session is in ``state``."""
    return keys.session_summary_state_pk(session_id, state, settings.SUMMARY_STATE_SHARDS)


# The states whose sessions may be indexed under "pending": a request older than
# SUMMARY_PENDING_MINUTES shows as one of these until the sweep asks again.
PENDING_EXPIRES_TO = (SummaryStates.STALE, SummaryStates.NONE)


def summary_state(*, meta: SessionMeta, now: datetime | None = None) -> SummaryState:
    """Derive the console's summary state from META (no I/O).

    Coverage decides between fresh and stale; the stored ``summary_state`` only says whether a
    request is in flight (pending) or the last run failed — a pending request older than
    ``SUMMARY_PENDING_MINUTES`` (lost message, dead queue) is shown for what it is: stale (none
    if the session has no turns).
    """
    now = now or utcnow()
    through = int(meta.summary_through or 0)
    count = int(meta.turn_count or 0)
    state = meta_stored_summary_state(meta)
    if state == SummaryStates.PENDING and not (
            meta.summary_requested_at and now - meta.summary_requested_at < timedelta(minutes=settings.SUMMARY_PENDING_MINUTES)):
        state = SummaryStates.STALE if through > 0 or count > 0 else SummaryStates.NONE
    return SummaryState(
        state=state, through_seq=through, turn_count=count, task_id=meta.summary_task_id,
        retries=int(meta.summary_retries or 0), error=meta.summary_error, requested_at=meta.summary_requested_at,
    )


def summary_due_candidates(*, marked_before: datetime, limit: int = 1000) -> list[SessionMeta]:
    """METAs (strongly consistent) of sessions whose unsummarised stretch began before
    ``marked_before``: one Query per shard of the keys-only index, then BatchGetItem."""
    cutoff = keys.ts_str(marked_before)
    pks: list[str] = []
    for shard in range(settings.SUMMARY_DUE_SHARDS):
        for item in SessionMeta.summary_due.query(
            keys.due_pk(shard), SessionMeta.summary_due_sk < cutoff, limit=limit - len(pks),
        ):
            pks.append(item.pk)
        if len(pks) >= limit:
            break
    if not pks:
        return []
    metas = SessionMeta.batch_get([(pk, keys.META_SK) for pk in pks], consistent_read=True)
    return sorted(metas, key=lambda m: m.session_id)


BACKLOG_COUNT_CAP = 10_000


def summary_backlog_count(*, waiting_since: datetime, cap: int = BACKLOG_COUNT_CAP) -> int:
    """Sessions with turns left unsummarised since before ``waiting_since``, across the whole
    table: one Select=COUNT Query per shard of the sparse, keys-only summary_due index.

    Stops at ``cap``: a backlog that large is an alarm, not a number worth reading exactly.
    Straight to DynamoDB, since DAX's query cache would keep repeating an old count."""
    cutoff = keys.ts_str(waiting_since)
    total = 0
    with dynamo.dax_bypassed():
        for shard in range(settings.SUMMARY_DUE_SHARDS):
            total += SessionMeta.summary_due.count(keys.due_pk(shard), SessionMeta.summary_due_sk < cutoff,
                                                   limit=cap - total)
            if total >= cap:
                return cap
    return total


def sessions_due(*, now: datetime | None = None, idle_minutes: int | None = None, limit: int = 1000) -> list[SessionMeta]:
    """Sessions idle longer than ``idle_minutes`` (default ``SUMMARY_IDLE_MINUTES``) whose
    latest summary does not cover their last turn."""
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.SUMMARY_IDLE_MINUTES if idle_minutes is None else idle_minutes)
    return [m for m in summary_due_candidates(marked_before=cutoff, limit=limit) if meta_is_due(meta=m, idle_cutoff=cutoff)]


def meta_is_due(*, meta: SessionMeta, idle_cutoff: datetime) -> bool:
    last = meta.last_message_at or meta.started_at
    return int(meta.turn_count or 0) > int(meta.summary_through or 0) and last is not None and last <= idle_cutoff
