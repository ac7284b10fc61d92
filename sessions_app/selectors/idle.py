"""Reads of the idle close (``services.idle_close``): when a session was last active, and which
open sessions may have been idle long enough. Index Queries and BatchGetItem only, never a Scan."""

from __future__ import annotations

import heapq
from datetime import datetime
from itertools import islice
from typing import Iterator

from django.conf import settings

from .. import dynamo, keys
from ..models import SessionMeta, SessionStatus


def session_last_activity(meta: SessionMeta) -> datetime:
    """When the session last showed life: its last turn (any role: a staff reply counts), or its
    start if it has none — and for a hand-off waiting for a human, the request, which is the
    bot asking on the customer's behalf (the idle clock must not have run out the moment it is
    asked, just because the customer's last message was an hour before)."""
    last = meta.last_message_at or meta.started_at
    if meta.status == SessionStatus.HANDED_OFF and meta.handoff_at and meta.handoff_at > last:
        return meta.handoff_at
    return last


def idle_close_candidates(*, started_before: datetime, limit: int, chunk: int = 100) -> Iterator[tuple[list[SessionMeta], bool]]:
    """Open sessions (active or handed off) started before ``started_before`` — only those can
    have been idle since then — oldest start first, at most ``limit``, in chunks of ``chunk``
    METAs; each chunk comes with whether candidates remain beyond ``limit``.

    Each status shard of ``by_status`` is read lazily in pages (the sort key begins with the
    start time, so the bound is a key condition: nothing newer is read) and the shards merged, so
    a run walks past long-lived sessions that are busy instead of re-reading the same oldest ones
    every time. Each chunk's META is read by BatchGetItem strongly consistent: the close is
    conditional on what this read saw, so it must be the table's latest, not DAX's or a
    replica's copy. Whether each one *is* idle is the caller's question (``session_last_activity``)."""
    before = keys.ts_str(started_before)  # "<timestamp>#<id>" < "<timestamp>": started strictly earlier
    shards = [((i.gsi3sk, i.session_id) for i in SessionMeta.by_status.query(
                  keys.status_pk(status, shard), SessionMeta.gsi3sk < before, page_size=min(limit + 1, 500)))
              for status in SessionStatus.INDEXED for shard in range(settings.DYNAMODB_STATUS_SHARDS)]
    merged = (session_id for _, session_id in heapq.merge(*shards))

    def take(count: int) -> list[str]:
        # The index pages are fetched here, lazily. Index Queries go to DynamoDB: DAX's query cache
        # is not invalidated by writes, and would hand out sessions already closed
        # (docs/architecture.md §Table design).
        with dynamo.dax_bypassed():
            return list(islice(merged, count))

    taken, ids = 0, take(min(chunk, limit))
    while ids:
        taken += len(ids)
        following = take(min(chunk, limit - taken) if taken < limit else 1)
        more = bool(following)  # the last chunk's answer: whether any were left beyond ``limit``
        # PynamoDB sends one BatchGetItem per 100 keys.
        found = {m.session_id: m for m in SessionMeta.batch_get([(keys.session_pk(i), keys.META_SK) for i in ids],
                                                                consistent_read=True)}
        # A session deleted since the index answered is simply not there.
        yield [found[i] for i in ids if i in found], more
        if taken >= limit:
            return
        ids = following
