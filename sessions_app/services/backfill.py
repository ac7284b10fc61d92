"""Index keys for sessions written before an index existed.

DynamoDB fills a new GSI only from items that already carry its key attributes, so after
``table_ensure`` adds ``by_channel`` or ``by_summary_state`` to a live table, older sessions stay
out of it until their keys are written. The sessions are found through ``by_day``: no Scan, and
each day's partitions are read once. ``by_channel``'s keys derive from by_day's projection; a
summary state derives from META's counters, so those METAs are read (BatchGetItem, consistent)
and each key is written guarded by the counters it was derived from. ``by_session_prefix``'s
keys derive from the id (written with ``by_channel``'s, in the same UpdateItem); the customer
directory (``by_customer_prefix``) gets an entry per customer seen, with its newest session's
TTL (``_CustomersSeen``).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Callable

from django.conf import settings
from pynamodb.exceptions import UpdateError

from .. import dynamo, keys
from ..models import SessionMeta, app_write_mark
from ..clock import utcnow
from ..selectors.summaries import meta_stored_summary_state, summary_state_key
from .sessions import _session_key_fields, customer_directory_record

# Indexes whose keys this backfill writes, and those keys (derived from by_day's projection).
BACKFILLED_INDEXES = ("by_channel", "by_summary_state", "by_session_prefix", "by_customer_prefix")
_BACKFILLED = ("gsi5pk", "gsi5sk", "gsi9pk", "gsi9sk")
_STATE_ATTEMPTS = 3  # a session written between our read and our update is read again


@dataclass
class BackfillReport:
    days: int = 0
    sessions_seen: int = 0
    sessions_updated: int = 0


def session_keys_backfill(*, day_from: date | None = None, day_to: date | None = None, threads: int = 8,
                          progress: Callable[[date, BackfillReport], None] = lambda day, report: None) -> BackfillReport:
    """Write the ``by_channel`` and ``by_summary_state`` keys on every session META that lacks them, for sessions started
    between ``day_from`` and ``day_to`` (UTC, inclusive; default: the whole TTL window).

    Idempotent and safe beside live traffic: each update is conditional on the keys still being
    absent and on the session still existing, so it neither overwrites nor resurrects anything."""
    day_to = day_to or utcnow().date() + timedelta(days=1)
    day_from = day_from or day_to - timedelta(days=settings.SESSION_TTL_DAYS + 1)
    report = BackfillReport()
    customers = _CustomersSeen()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="backfill") as pool:
        day = day_to
        while day >= day_from:
            partitions = [(day, shard) for shard in range(settings.DYNAMODB_DAY_SHARDS)]
            for seen, updated in pool.map(partial(_backfill_partition, customers=customers), partitions):
                report.sessions_seen += seen
                report.sessions_updated += updated
            report.days += 1
            progress(day, report)
            day -= timedelta(days=1)
    return report


class _CustomersSeen:
    """The customer directory's part of a backfill run: each customer's newest start already
    recorded (``customer_directory_record``) in this run. Days are walked newest first, so most
    customers are recorded once per run — an UpdateItem per customer, not per session."""

    def __init__(self):
        self._newest: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def record(self, sessions: list[SessionMeta]) -> None:
        newest: dict[str, datetime] = {}
        for indexed in sessions:
            if indexed.customer_id not in newest or indexed.started_at > newest[indexed.customer_id]:
                newest[indexed.customer_id] = indexed.started_at
        for customer_id, started_at in newest.items():
            with self._lock:
                known = self._newest.get(customer_id)
                if known is not None and known >= started_at:
                    continue
                self._newest[customer_id] = started_at
            # Conditional: moves the entry's expiry forward only. (It does not check that the
            # session still exists: a customer erased in the milliseconds since by_day listed
            # it could get an entry back, without sessions, until its TTL.)
            customer_directory_record(customer_id=customer_id, started_at=started_at)


def _backfill_partition(partition: tuple[date, int], *, customers: _CustomersSeen | None = None) -> tuple[int, int]:
    day, shard = partition
    seen = 0
    # Straight to DynamoDB: a migration's reads would only crowd DAX's caches.
    with dynamo.dax_bypassed():
        indexed_sessions = list(SessionMeta.by_day.query(keys.day_pk(day, shard)))
        updated = _backfill_summary_states([indexed.session_id for indexed in indexed_sessions])
        for indexed in indexed_sessions:
            seen += 1
            fields = _session_key_fields(session_id=indexed.session_id, customer_id=indexed.customer_id,
                                         channel=indexed.channel, started_at=indexed.started_at, status=indexed.status)
            target = SessionMeta(keys.session_pk(indexed.session_id), keys.META_SK)
            try:
                target.update(
                    actions=[*(getattr(SessionMeta, name).set(fields[name]) for name in _BACKFILLED), app_write_mark()],
                    condition=SessionMeta.pk.exists() & (SessionMeta.gsi5pk.does_not_exist()
                                                         | SessionMeta.gsi9pk.does_not_exist()),
                )
            except UpdateError as exc:
                if not dynamo.is_condition_failed(exc):
                    raise
                continue
            updated.add(indexed.session_id)
        if customers is not None:
            customers.record(indexed_sessions)
    return seen, len(updated)


def _backfill_summary_states(session_ids: list[str]) -> set[str]:
    """Write the by_summary_state keys of those sessions that lack them; returns their ids."""
    written: set[str] = set()
    pending = [keys.session_pk(session_id) for session_id in session_ids]
    for _ in range(_STATE_ATTEMPTS):
        if not pending:
            break
        metas = SessionMeta.batch_get([(pk, keys.META_SK) for pk in pending], consistent_read=True)
        pending = []
        for meta in metas:
            if meta.gsi8pk is not None:
                continue
            state = meta_stored_summary_state(meta)
            guard = SessionMeta.gsi8pk.does_not_exist() & (SessionMeta.turn_count == int(meta.turn_count or 0))
            guard &= (SessionMeta.summary_through == int(meta.summary_through)) if meta.summary_through is not None \
                else SessionMeta.summary_through.does_not_exist()
            guard &= (SessionMeta.summary_state == meta.summary_state) if meta.summary_state is not None \
                else SessionMeta.summary_state.does_not_exist()
            try:
                meta.update(actions=[SessionMeta.gsi8pk.set(summary_state_key(session_id=meta.session_id, state=state)),
                                     SessionMeta.gsi8sk.set(keys.started_sk(meta.started_at, meta.session_id)),
                                     app_write_mark()],
                            condition=guard)
            except UpdateError as exc:
                if not dynamo.is_condition_failed(exc):
                    raise
                pending.append(meta.pk)  # changed since we read it (or deleted): look again
                continue
            written.add(meta.session_id)
    return written
