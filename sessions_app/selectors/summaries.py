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


def summary_state(*, meta: SessionMeta, now: datetime | None = None) -> SummaryState:
    """Derive the console's summary state from META (no I/O).

    Coverage decides between fresh and stale; the stored ``summary_state`` only says whether a
    request is in flight (pending) or the last run failed — a pending request older than
    ``SUMMARY_PENDING_MINUTES`` (lost message, dead queue) is shown for what it is: stale.
    """
    now = now or utcnow()
    through = int(meta.summary_through or 0)
    count = int(meta.turn_count or 0)
    stored = meta.summary_state
    covered = count > 0 and through >= count
    if covered:
        state = SummaryStates.FRESH
    elif stored == SummaryStates.FAILED:
        state = SummaryStates.FAILED
    elif stored == SummaryStates.PENDING and meta.summary_requested_at and \
            now - meta.summary_requested_at < timedelta(minutes=settings.SUMMARY_PENDING_MINUTES):
        state = SummaryStates.PENDING
    elif through > 0:
        state = SummaryStates.STALE
    elif stored == SummaryStates.PENDING:
        state = SummaryStates.STALE if count else SummaryStates.NONE
    else:
        state = SummaryStates.NONE
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
