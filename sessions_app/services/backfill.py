"""Index keys for sessions written before an index existed.

DynamoDB fills a new GSI only from items that already carry its key attributes, so after
``table_ensure`` adds ``by_channel`` to a live table, older sessions stay out of it until their
keys are written. The sessions are found through ``by_day`` (which projects everything the new
keys derive from): no Scan, and each day's partitions are read once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable

from django.conf import settings
from pynamodb.exceptions import UpdateError

from .. import dynamo, keys
from ..models import SessionMeta, app_write_mark
from ..clock import utcnow
from .sessions import _session_key_fields

# Indexes whose keys this backfill writes, and those keys (derived from by_day's projection).
BACKFILLED_INDEXES = ("by_channel",)
_BACKFILLED = ("gsi5pk", "gsi5sk")


@dataclass
class BackfillReport:
    days: int = 0
    sessions_seen: int = 0
    sessions_updated: int = 0


def session_keys_backfill(*, day_from: date | None = None, day_to: date | None = None, threads: int = 8,
                          progress: Callable[[date, BackfillReport], None] = lambda day, report: None) -> BackfillReport:
    """Write the ``by_channel`` keys on every session META that lacks them, for sessions started
    between ``day_from`` and ``day_to`` (UTC, inclusive; default: the whole TTL window).

    Idempotent and safe beside live traffic: each update is conditional on the keys still being
    absent and on the session still existing, so it neither overwrites nor resurrects anything."""
    day_to = day_to or utcnow().date() + timedelta(days=1)
    day_from = day_from or day_to - timedelta(days=settings.SESSION_TTL_DAYS + 1)
    report = BackfillReport()
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="backfill") as pool:
        day = day_to
        while day >= day_from:
            partitions = [(day, shard) for shard in range(settings.DYNAMODB_DAY_SHARDS)]
            for seen, updated in pool.map(_backfill_partition, partitions):
                report.sessions_seen += seen
                report.sessions_updated += updated
            report.days += 1
            progress(day, report)
            day -= timedelta(days=1)
    return report


def _backfill_partition(partition: tuple[date, int]) -> tuple[int, int]:
    day, shard = partition
    seen = updated = 0
    # Straight to DynamoDB: a migration's reads would only crowd DAX's caches.
    with dynamo.dax_bypassed():
        for indexed in SessionMeta.by_day.query(keys.day_pk(day, shard)):
            seen += 1
            fields = _session_key_fields(session_id=indexed.session_id, customer_id=indexed.customer_id,
                                         channel=indexed.channel, started_at=indexed.started_at, status=indexed.status)
            target = SessionMeta(keys.session_pk(indexed.session_id), keys.META_SK)
            try:
                target.update(
                    actions=[*(getattr(SessionMeta, name).set(fields[name]) for name in _BACKFILLED), app_write_mark()],
                    condition=SessionMeta.pk.exists() & SessionMeta.gsi5pk.does_not_exist(),
                )
            except UpdateError as exc:
                if not dynamo.is_condition_failed(exc):
                    raise
                continue
            updated += 1
    return seen, updated
