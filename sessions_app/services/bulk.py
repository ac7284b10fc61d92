"""Bulk loading of whole sessions (demo data, benchmarks, imports): parallel, fully packed
BatchWriteItem requests.

Not the live write path: it bypasses the per-turn transaction because each session is written
by one loader that owns it. A session's META is sent only after every request holding its turns
and client-message-id markers has completed, so a session that is visible in any listing (all of
them go through META's indexes) always has all of its turns. Requests carry items of many
sessions, because at one or two items per request the loader's time went to per-request overhead.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

from django.conf import settings

from .. import dynamo, keys
from ..exceptions import StoreUnavailable
from ..clock import utcnow
from ..models import ChatItem, ClientMessageMarker, SessionMeta, SessionStatus, Summary, Turn
from ..usage import usage_dump, usage_from_turns
from ..selectors.summaries import SummaryStates, meta_stored_summary_state, summary_state_key
from .sessions import _session_key_fields, customer_directory_record

# https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html
BATCH_WRITE_MAX_ITEMS = 25
# Unprocessed items are resent with capped, fully jittered exponential backoff (as the page above
# asks); a batch gives up only after this many rounds in a row in which nothing at all was written.
_MAX_STALLED_ROUNDS = 10
_BACKOFF_BASE_SECONDS = 0.05
_BACKOFF_CAP_SECONDS = 5.0


@dataclass
class SessionSpec:
    customer_id: str
    channel: str
    started_at: datetime
    # (role, text) or (role, text, trace), oldest first; trace: the bot's model, latency_ms,
    # tokens_in, tokens_out, as an append records them.
    turns: list[tuple]
    locale: str = "en"
    status: str = SessionStatus.ACTIVE
    tags: list[str] = field(default_factory=list)
    session_id: str | None = None
    seconds_between_turns: int = 30
    handoff_reason: str = "the customer asked for a person"  # for status handed_off: waits in the queue
    # An imported summary of turns 1..summary_through (0: none), and the request mark on top of
    # it: None, "pending" (asked for at the load) or "failed" (with summary_error).
    summary_through: int = 0
    summary_text: str = ""
    summary_mark: str | None = None
    summary_error: str = "imported as failed"


def _items_for(spec: SessionSpec) -> tuple[list[ChatItem], SessionMeta]:
    session_id = spec.session_id or uuid.uuid4().hex
    pk = keys.session_pk(session_id)
    expires = spec.started_at + timedelta(days=settings.SESSION_TTL_DAYS)
    items: list[ChatItem] = []
    moment = spec.started_at
    turns: list[Turn] = []
    for seq, (role, text, *trace) in enumerate(spec.turns, start=1):
        moment = spec.started_at + timedelta(seconds=spec.seconds_between_turns * seq)
        client_msg_id = f"import-{seq}"
        turns.append(Turn(pk, keys.turn_sk(seq), seq=seq, role=role, text=text, created_at=moment,
                          client_msg_id=client_msg_id, expires_at=expires, **(trace[0] if trace else {})))
        items.append(turns[-1])
        items.append(ClientMessageMarker(pk, keys.client_msg_sk(client_msg_id), seq=seq, expires_at=expires))
    closed = spec.status == SessionStatus.CLOSED
    meta = SessionMeta(
        pk, keys.META_SK, session_id=session_id, customer_id=spec.customer_id, channel=spec.channel,
        locale=spec.locale, status=spec.status, tags=list(spec.tags), started_at=spec.started_at,
        last_message_at=moment if spec.turns else None, closed_at=moment if closed else None,
        turn_count=len(spec.turns), summary_through=spec.summary_through, expires_at=expires,
        **_session_key_fields(session_id=session_id, customer_id=spec.customer_id, channel=spec.channel,
                               started_at=spec.started_at, status=spec.status),
    )
    if turns:
        meta.usage = usage_dump(usage_from_turns(turns))  # as the appends would have kept it
    if spec.status == SessionStatus.HANDED_OFF:
        # Handed off and unowned, as after the bot's request: in the "needs a human" queue.
        meta.handoff_reason, meta.handoff_at = spec.handoff_reason, moment
        meta.gsi6pk = keys.waiting_pk(keys.shard_of(session_id, settings.DYNAMODB_STATUS_SHARDS))
        meta.gsi6sk = keys.started_sk(moment, session_id)
    if not 0 <= spec.summary_through <= len(spec.turns):
        raise ValueError("a summary covers at most the session's turns")
    if spec.summary_through:
        summarised_at = spec.started_at + timedelta(seconds=spec.seconds_between_turns * spec.summary_through)
        items.append(Summary(pk, keys.summary_sk(spec.summary_through), through_seq=spec.summary_through,
                             text=spec.summary_text or f"Summary of turns 1–{spec.summary_through}.",
                             generator="import", created_at=summarised_at, expires_at=expires))
        meta.summary_state = SummaryStates.FRESH
    uncovered = len(spec.turns) > spec.summary_through
    if uncovered and spec.summary_mark in (SummaryStates.PENDING, SummaryStates.FAILED):
        meta.summary_state = spec.summary_mark
        meta.summary_requested_at = utcnow()
        meta.summary_task_id, meta.summary_retries = f"import-{session_id}", 0
        if spec.summary_mark == SummaryStates.FAILED:
            meta.summary_error, meta.summary_retries = spec.summary_error, settings.SUMMARY_MAX_RETRIES
    meta.gsi8pk = summary_state_key(session_id=session_id, state=meta_stored_summary_state(meta))
    if uncovered:
        # Unsummarised since its first uncovered turn: the summary sweep will find it (as after
        # live appends).
        meta.summary_due_pk = keys.summary_due_pk(session_id, settings.SUMMARY_DUE_SHARDS)
        meta.summary_due_sk = keys.ts_str(spec.started_at + timedelta(seconds=spec.seconds_between_turns * (spec.summary_through + 1)))
    return items, meta


def _batch_write(items: list[ChatItem]) -> None:
    """One BatchWriteItem, then its UnprocessedItems again until none is left.

    Runs in a pool thread: the DAX bypass is per thread, so it is switched on here.
    """
    connection = ChatItem._get_connection()
    table = ChatItem.Meta.table_name
    puts = [item.serialize() for item in items]  # here, not in the caller, whose thread paces the load
    stalled = 0
    with dynamo.dax_bypassed():
        while True:
            try:
                data = connection.batch_write_item(put_items=puts) or {}
            except StoreUnavailable as exc:
                # Timed out (after botocore's own retries) or throttled: nothing is known to be
                # written, and puts of the same items are safe to send again — a load is not
                # latency-bound, so it backs off and resends instead of failing the whole load.
                stalled += 1
                if stalled >= _MAX_STALLED_ROUNDS:
                    raise StoreUnavailable(f"BatchWriteItem failed {stalled} times in a row: {exc}") from exc
                time.sleep(random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2 ** stalled)))
                continue
            unprocessed = data.get("UnprocessedItems", {}).get(table)
            if not unprocessed:
                return
            stalled = stalled + 1 if len(unprocessed) == len(puts) else 0
            if stalled >= _MAX_STALLED_ROUNDS:
                raise StoreUnavailable(
                    f"BatchWriteItem left {len(unprocessed)} items unprocessed {stalled} times in a row")
            puts = [request["PutRequest"]["Item"] for request in unprocessed]
            time.sleep(random.uniform(0, min(_BACKOFF_CAP_SECONDS, _BACKOFF_BASE_SECONDS * 2 ** stalled)))


def _directory_write(customer_id: str, started_at: datetime) -> None:
    """The customer's directory entry, in a pool thread: straight to DynamoDB, like the batches."""
    with dynamo.dax_bypassed():
        customer_directory_record(customer_id=customer_id, started_at=started_at)


@dataclass(eq=False)  # identity, not value: sessions are kept in sets
class _Session:
    meta: SessionMeta
    turns: int
    unwritten_batches: int = 0  # sent or still filling, holding this session's turns or markers
    packed: bool = False  # all of its turns and markers are in batches


@dataclass
class _Batch:
    items: list[ChatItem] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)
    owners: set[_Session] = field(default_factory=set)  # sessions with turns or markers here
    metas: list[_Session] = field(default_factory=list)  # sessions whose META is here
    customer: str | None = None  # set on a customer's directory write instead of items


class _Loader:
    """Packs items into batches and tracks which METAs may go. Used from the caller's thread
    only, so none of its state needs a lock; pool threads only write batches."""

    def __init__(self, pool: ThreadPoolExecutor, *, threads: int, progress: Callable[[int, int], None]):
        self.pool = pool
        self.threads = threads
        # A queued batch per worker keeps the workers busy while this thread packs, and bounds memory.
        self.max_in_flight = 2 * threads
        self.progress = progress
        self.filling = _Batch()
        self.in_flight: dict[Future, _Batch] = {}
        self.ready: deque[_Session] = deque()  # METAs free to send
        # Per customer, the latest start whose directory entry (customer_directory_record) this
        # load has asked for: a later session of the customer asks again (its TTL is later),
        # an earlier one does not — at most a few conditional UpdateItems per customer.
        self.customers: dict[str, datetime] = {}
        # The customer's latest directory write while it runs: every session of the customer
        # added meanwhile waits for it, as for a batch holding its turns.
        self.directory_writing: dict[str, _Batch] = {}
        self.sessions = self.turns = 0

    def add(self, spec: SessionSpec) -> None:
        items, meta = _items_for(spec)
        session = _Session(meta, len(spec.turns))
        known = self.customers.get(spec.customer_id)
        if known is None or spec.started_at > known:
            self.customers[spec.customer_id] = spec.started_at
            self._submit(_Batch(customer=spec.customer_id), _directory_write, spec.customer_id, spec.started_at)
        # Like a live start, the directory before META: the META waits for the customer's entry
        # as it waits for its turns. (In the caller's thread, one UpdateItem per new customer
        # paced the whole load.)
        if (directory := self.directory_writing.get(spec.customer_id)) is not None:
            directory.owners.add(session)
            session.unwritten_batches += 1
        for item in items:
            self._put(item, owner=session)
        session.packed = True
        if session.unwritten_batches == 0:  # no turns, or all of them already written
            self.ready.append(session)
        self._pack_ready()

    def finish(self) -> None:
        self._pack_ready()
        while self.filling.items or self.in_flight:
            # Only the tail sends part-filled batches, and only to a worker that would sit idle.
            if self.filling.items and len(self.in_flight) < self.threads:
                self._send()
            else:
                self._reap(block=True)
            self._pack_ready()

    def _pack_ready(self) -> None:
        # Draining here, not in _reap, keeps _put → _send → _reap from recursing into _put.
        while self.ready:
            session = self.ready.popleft()
            self._put(session.meta, meta_of=session)

    def _put(self, item: ChatItem, *, owner: _Session | None = None, meta_of: _Session | None = None) -> None:
        key = (item.pk, item.sk)
        if key in self.filling.keys:  # DynamoDB refuses a request naming one key twice
            self._send()
        batch = self.filling
        batch.items.append(item)
        batch.keys.add(key)
        if owner is not None and owner not in batch.owners:
            batch.owners.add(owner)
            owner.unwritten_batches += 1
        if meta_of is not None:
            batch.metas.append(meta_of)
        if len(batch.items) == BATCH_WRITE_MAX_ITEMS:
            self._send()

    def _send(self) -> None:
        batch, self.filling = self.filling, _Batch()
        self._submit(batch, _batch_write, batch.items)

    def _submit(self, batch: _Batch, write: Callable, *args) -> None:
        self._reap(block=False)
        while len(self.in_flight) >= self.max_in_flight:
            self._reap(block=True)
        self.in_flight[self.pool.submit(write, *args)] = batch
        if batch.customer is not None:
            self.directory_writing[batch.customer] = batch

    def _reap(self, *, block: bool) -> None:
        if not self.in_flight:
            return
        done, _ = wait(self.in_flight, timeout=None if block else 0, return_when=FIRST_COMPLETED)
        metas_written = False
        for future in done:
            batch = self.in_flight.pop(future)
            future.result()  # a worker's exception is raised here, in the caller's thread
            if batch.customer is not None and self.directory_writing.get(batch.customer) is batch:
                del self.directory_writing[batch.customer]
            for session in batch.owners:
                session.unwritten_batches -= 1
                if session.unwritten_batches == 0 and session.packed:
                    self.ready.append(session)
            for session in batch.metas:
                self.sessions += 1
                self.turns += session.turns
                metas_written = True
        if metas_written:
            self.progress(self.sessions, self.turns)


def sessions_bulk_load(*, specs: Iterable[SessionSpec], threads: int = 8,
                       progress: Callable[[int, int], None] = lambda sessions, turns: None) -> tuple[int, int]:
    """Write whole sessions with parallel, fully packed batch writes. Returns (sessions, turns)
    written.

    Writes go straight to DynamoDB, never through DAX. ``specs`` is consumed lazily and at most
    ``2 * threads`` batches are in flight, so memory stays bounded for any number of sessions.
    Items are plain puts: loading a spec with the same ``session_id`` again overwrites the same
    items. ``progress(sessions_done, turns_done)`` is called from the caller's thread whenever
    more METAs have been written, counting the sessions those METAs complete. The first error
    (from ``specs`` or from a write) is raised after the batches already running have finished;
    batches not yet started are dropped, and METAs of sessions with unwritten turns are never sent.
    """
    pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sessions-bulk-load")
    try:
        loader = _Loader(pool, threads=threads, progress=progress)
        for spec in specs:
            loader.add(spec)
        loader.finish()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return loader.sessions, loader.turns
