"""The long-running change-feed consumer (``manage.py stream_consume``).

One thread, any number of shards: every pass it discovers shards (when due), renews its leases,
takes free or expired ones up to its fair share, then reads each held shard once and applies
what it read (``dispatch.batch_apply``), checkpointing after the effects are applied — so a
crash between the two makes the records come again (at least once; handlers are idempotent).

- A child shard is read only once its parent's lease says ``SHARD_END`` (or the parent is gone
  from the stream, trimmed after 24 h): resharding keeps each item's changes in order.
- A new shard (no checkpoint) is read from ``TRIM_HORIZON``.
- A checkpoint the stream no longer holds (``TrimmedDataAccessException``: the consumer was away
  for over 24 h) is reported loudly — logged at ERROR, kept as the last error the overview shows,
  with an upper bound on the changes missed — and reading resumes at the trim horizon.
- ``ExpiredIteratorException`` (an iterator lives 15 minutes): a new one from the checkpoint.
- Throttling and outages back off per shard (exponential, capped, with jitter); a record some
  handler fails on permanently is retried ``STREAM_MAX_ATTEMPTS`` times, then skipped with an
  ERROR, like Lambda's MaximumRetryAttempts. Outages (Redis, DynamoDB away) are retried forever.
- ``stop()``: the batch in hand is finished and checkpointed, then every lease is released.
"""

from __future__ import annotations

import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from .. import dynamo
from ..realtime import stream_error_record, stream_progress_record
from ..clock import utcnow
from .dispatch import BatchOutcome, Handler, batch_apply
from .leases import SHARD_END, Lease, LeaseTable
from .records import Change, changes_from_records

log = logging.getLogger("sessions_app.streams")

_BACKOFF_START = 0.25
_BACKOFF_MAX = 30.0


def stream_arn_of(*, table_name: str | None = None) -> str | None:
    """The table's current stream ARN (None: the table has no stream enabled)."""
    table = dynamo.connection().client.describe_table(TableName=table_name or settings.DYNAMODB_TABLE)["Table"]
    if not table.get("StreamSpecification", {}).get("StreamEnabled"):
        return None
    return table.get("LatestStreamArn")


@dataclass(frozen=True, slots=True)
class Shard:
    shard_id: str
    parent_id: str | None
    closed: bool  # has an ending sequence number: no records are added any more


def shards_describe(stream_arn: str) -> list[Shard]:
    """Every shard of the stream, following DescribeStream's pagination."""
    client = dynamo.streams_client()
    shards, start = [], None
    while True:
        request = {"StreamArn": stream_arn, "Limit": 100}
        if start:
            request["ExclusiveStartShardId"] = start
        description = client.describe_stream(**request)["StreamDescription"]
        for shard in description.get("Shards", []):
            shards.append(Shard(shard_id=shard["ShardId"], parent_id=shard.get("ParentShardId"),
                                closed="EndingSequenceNumber" in shard.get("SequenceNumberRange", {})))
        start = description.get("LastEvaluatedShardId")
        if not start:
            return shards


def shards_ready(leases: Sequence[Lease], live_shard_ids: set[str]) -> list[Lease]:
    """The unfinished shards that may be read now: those without a parent, or whose parent is
    finished, or whose parent the stream no longer has (trimmed). Parents before children."""
    by_id = {lease.shard_id: lease for lease in leases}
    ready = []
    for lease in leases:
        if lease.finished:
            continue
        parent = by_id.get(lease.parent_id) if lease.parent_id else None
        if lease.parent_id and lease.parent_id in live_shard_ids and (parent is None or not parent.finished):
            continue
        ready.append(lease)
    return sorted(ready, key=lambda lease: lease.shard_id)


@dataclass
class _Held:
    lease: Lease
    renewed_at: float  # monotonic time of the last successful write to the lease
    iterator: str | None = None
    checkpoint: str | None = None
    backoff_until: float = 0.0
    backoff: float = 0.0
    attempts: dict[str, int] = field(default_factory=dict)  # failing record seq -> attempts


@dataclass
class ConsumerStats:
    records: int = 0
    batches: int = 0
    skipped: int = 0
    trimmed_reports: int = 0
    errors: int = 0


class StreamConsumer:
    def __init__(self, *, stream_arn: str, handlers: Sequence[Handler], consumer_id: str | None = None,
                 lease_table: LeaseTable | None = None, on_batch: Callable[[BatchOutcome], None] | None = None) -> None:
        self.stream_arn = stream_arn
        self.handlers = list(handlers)
        self.consumer_id = consumer_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.leases = lease_table or LeaseTable(stream_arn=stream_arn)
        self.on_batch = on_batch
        self.lease_seconds = settings.STREAM_LEASE_SECONDS
        self.batch_size = settings.STREAM_BATCH_SIZE
        self.poll_seconds = settings.STREAM_POLL_SECONDS
        self.discovery_seconds = settings.STREAM_DISCOVERY_SECONDS
        self.max_attempts = settings.STREAM_MAX_ATTEMPTS
        self.held: dict[str, _Held] = {}
        self.stats = ConsumerStats()
        self._stopping = threading.Event()
        self._next_discovery = 0.0
        self._next_renewal = 0.0
        self._live_shards: set[str] = set()

    # --- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        """Consume until :meth:`stop`; then release every lease."""
        log.info("stream consumer %s reading %s", self.consumer_id, self.stream_arn)
        try:
            while not self._stopping.is_set():
                try:
                    busy = self.step()
                except (ClientError, BotoCoreError) as exc:
                    self._error(None, f"{type(exc).__name__}: {exc}")
                    busy = False
                    self._stopping.wait(min(_BACKOFF_MAX, self.poll_seconds * 8))
                if not busy:
                    self._stopping.wait(self.poll_seconds)
        finally:
            self.release_all()

    def stop(self) -> None:
        """Ask :meth:`run` to finish the batch in hand, checkpoint, release and return."""
        self._stopping.set()

    def step(self) -> bool:
        """One pass over the shards; returns whether any records were processed."""
        now = time.monotonic()
        if now >= self._next_discovery:
            self.discover()
            self._next_discovery = now + self.discovery_seconds
        if now >= self._next_renewal:
            self.renew_all()
            self.take_available()
            self._next_renewal = now + self.lease_seconds / 3
        busy = False
        for shard_id in sorted(self.held):
            if self._stopping.is_set():
                break
            busy = self._read_shard(self.held[shard_id]) or busy
        return busy

    # --- leases ---------------------------------------------------------------------------------
    def discover(self) -> None:
        shards = shards_describe(self.stream_arn)
        self._live_shards = {s.shard_id for s in shards}
        known = {lease.shard_id for lease in self.leases.list()}
        for shard in shards:
            if shard.shard_id not in known:
                self.leases.add(shard_id=shard.shard_id, parent_id=shard.parent_id)

    def renew_all(self) -> None:
        for shard_id, held in list(self.held.items()):
            renewed = self.leases.renew(held.lease, owner=self.consumer_id, seconds=self.lease_seconds)
            if renewed is None:
                self._lost(shard_id)
            else:
                held.lease, held.renewed_at = renewed, time.monotonic()

    def take_available(self) -> None:
        leases = self.leases.list()
        ready = shards_ready(leases, self._live_shards or {lease.shard_id for lease in leases})
        owners = {lease.owner for lease in leases if lease.held() and not lease.finished} | {self.consumer_id}
        share = math.ceil(len(ready) / len(owners)) if ready else 0
        for lease in ready:
            if len(self.held) >= share or self._stopping.is_set():
                break
            if lease.shard_id in self.held or lease.held():
                continue
            taken = self.leases.take(lease, owner=self.consumer_id, seconds=self.lease_seconds)
            if taken is not None:
                log.info("consumer %s took shard %s (checkpoint %s)", self.consumer_id, lease.shard_id, taken.checkpoint)
                self.held[lease.shard_id] = _Held(lease=taken, renewed_at=time.monotonic(), checkpoint=taken.checkpoint)

    def release_all(self) -> None:
        for shard_id, held in list(self.held.items()):
            try:
                self.leases.release(held.lease, owner=self.consumer_id)
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not release shard %s: %s (it expires on its own)", shard_id, exc)
            self.held.pop(shard_id, None)
        log.info("stream consumer %s released its leases", self.consumer_id)

    def _lost(self, shard_id: str) -> None:
        log.warning("consumer %s lost its lease on shard %s", self.consumer_id, shard_id)
        self.held.pop(shard_id, None)

    def _lease_safe(self, held: _Held) -> bool:
        """Whether the lease surely still holds for another batch: a consumer that could not
        renew in time stops reading before another one may take over."""
        return time.monotonic() - held.renewed_at < self.lease_seconds * 0.7

    # --- reading ----------------------------------------------------------------------------------
    def _iterator(self, held: _Held) -> str | None:
        client = dynamo.streams_client()
        shard_id = held.lease.shard_id
        if held.checkpoint:
            try:
                return client.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard_id,
                                                 ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                                 SequenceNumber=held.checkpoint)["ShardIterator"]
            except ClientError as exc:
                if dynamo.error_code(exc) != "TrimmedDataAccessException":
                    raise
                self._trimmed(held)
        return client.get_shard_iterator(StreamArn=self.stream_arn, ShardId=shard_id,
                                         ShardIteratorType="TRIM_HORIZON")["ShardIterator"]

    def _trimmed(self, held: _Held) -> None:
        self.stats.trimmed_reports += 1
        age = ""
        if held.lease.checkpoint_at:
            age = f", written {(time.time() - held.lease.checkpoint_at) / 3600:.1f} h ago"
        self._error(held.lease.shard_id,
                    f"checkpoint {held.checkpoint} of shard {held.lease.shard_id}{age} is older than the stream keeps "
                    f"(24 h): the changes between it and the trim horizon were never applied; resuming at the trim "
                    f"horizon", level=logging.ERROR)
        held.attempts["trimmed_from"] = int(held.checkpoint or 0)  # the first record read says how many
        held.checkpoint = None

    def _read_shard(self, held: _Held) -> bool:
        now = time.monotonic()
        if now < held.backoff_until:
            return False
        if not self._lease_safe(held):
            return False
        client = dynamo.streams_client()
        try:
            if held.iterator is None:
                held.iterator = self._iterator(held)
            page = client.get_records(ShardIterator=held.iterator, Limit=self.batch_size)
        except ClientError as exc:
            code = dynamo.error_code(exc)
            if code == "ExpiredIteratorException":
                held.iterator = None
                return False
            if code in dynamo.STREAMS_THROTTLED:
                self._back_off(held, f"{code} reading shard {held.lease.shard_id}")
                return False
            if code == "TrimmedDataAccessException":
                self._trimmed(held)
                held.iterator = None
                return False
            raise
        records = page.get("Records", [])
        next_iterator = page.get("NextShardIterator")
        if records:
            self._apply(held, records)
            if held.iterator is None:  # a failure rewound the shard: re-read from the checkpoint
                return True
        held.iterator = next_iterator
        if next_iterator is None:  # a closed shard read to its end
            self._finish(held)
        elif not records:
            held.backoff = 0.0
        return bool(records)

    def _apply(self, held: _Held, records: list[dict]) -> None:
        shard_id = held.lease.shard_id
        changes: list[Change] = changes_from_records(records, shard_id=shard_id)
        trimmed_from = held.attempts.pop("trimmed_from", None)
        if trimmed_from is not None:
            missed = max(0, changes[0].seq_number - trimmed_from - 1)
            self._error(shard_id, f"shard {shard_id}: up to {missed} changes were missed (sequence numbers "
                                  f"{trimmed_from + 1}..{changes[0].seq_number - 1})", level=logging.ERROR)
        outcome = batch_apply(changes, self.handlers)
        applied = list(outcome.applied)
        if outcome.failures:
            failed = changes[outcome.first_failed]
            attempts = held.attempts.get(failed.seq, 0) + 1
            held.attempts = {failed.seq: attempts}
            if not outcome.transient and attempts >= self.max_attempts:
                self.stats.skipped += 1
                self._error(shard_id, f"skipping record {failed.seq} of shard {shard_id} after {attempts} attempts: "
                                      f"{outcome.describe()}", level=logging.ERROR)
                applied.append(failed)
                held.attempts = {}
            else:
                self._error(shard_id, outcome.describe(), level=logging.WARNING)
        else:
            held.attempts = {}
        if applied and not self._checkpoint(held, applied[-1].seq):
            return
        self.stats.records += len(applied)
        self.stats.batches += 1
        now = utcnow()
        stream_progress_record(lags_ms=[(now - c.changed_at).total_seconds() * 1000 for c in applied],
                               origins=[c.origin for c in applied])
        if self.on_batch is not None:
            self.on_batch(outcome)
        if len(applied) < len(changes):
            # Re-read from the checkpoint after a pause: the rest of the batch comes again.
            held.iterator = None
            self._back_off(held, None)

    def _checkpoint(self, held: _Held, seq: str) -> bool:
        renewed = self.leases.renew(held.lease, owner=self.consumer_id, seconds=self.lease_seconds, checkpoint=seq)
        if renewed is None:
            self._lost(held.lease.shard_id)
            return False
        held.lease, held.renewed_at, held.checkpoint = renewed, time.monotonic(), seq
        return True

    def _finish(self, held: _Held) -> None:
        shard_id = held.lease.shard_id
        finished = self.leases.renew(held.lease, owner=self.consumer_id, seconds=self.lease_seconds, checkpoint=SHARD_END)
        if finished is not None:
            log.info("shard %s finished; its children may be read now", shard_id)
            self.leases.release(finished, owner=self.consumer_id)
        self.held.pop(shard_id, None)
        self._next_discovery = 0.0  # look for the children now
        self._next_renewal = 0.0

    def _back_off(self, held: _Held, reason: str | None) -> None:
        held.backoff = min(_BACKOFF_MAX, max(_BACKOFF_START, held.backoff * 2))
        held.backoff_until = time.monotonic() + held.backoff * random.uniform(0.5, 1.0)
        if reason:
            log.warning("%s: backing off %.1fs", reason, held.backoff)

    def _error(self, shard_id: str | None, message: str, *, level: int = logging.WARNING) -> None:
        self.stats.errors += 1
        log.log(level, "stream consumer %s: %s", self.consumer_id, message)
        stream_error_record(consumer=self.consumer_id, shard=shard_id, message=message)
