"""Bulk loading of whole sessions (demo data, benchmarks, imports): parallel BatchWriteItem.

Not the live write path: it bypasses the per-turn transaction because each session is written
by one loader that owns it. Turns go first and META last, so a session that is visible in any
listing always has all of its turns.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

from django.conf import settings

from .. import dynamo, keys
from ..models import ChatItem, ClientMessageMarker, SessionMeta, SessionStatus, Turn
from ..selectors.summaries import summary_due_pk
from .sessions import _session_key_fields


@dataclass
class SessionSpec:
    customer_id: str
    channel: str
    started_at: datetime
    turns: list[tuple[str, str]]  # (role, text), oldest first
    locale: str = "en"
    status: str = SessionStatus.ACTIVE
    tags: list[str] = field(default_factory=list)
    session_id: str | None = None
    seconds_between_turns: int = 30


def _items_for(spec: SessionSpec) -> tuple[list[ChatItem], SessionMeta]:
    session_id = spec.session_id or uuid.uuid4().hex
    pk = keys.session_pk(session_id)
    expires = spec.started_at + timedelta(days=settings.SESSION_TTL_DAYS)
    items: list[ChatItem] = []
    moment = spec.started_at
    for seq, (role, text) in enumerate(spec.turns, start=1):
        moment = spec.started_at + timedelta(seconds=spec.seconds_between_turns * seq)
        client_msg_id = f"import-{seq}"
        items.append(Turn(pk, keys.turn_sk(seq), seq=seq, role=role, text=text, created_at=moment,
                          client_msg_id=client_msg_id, expires_at=expires))
        items.append(ClientMessageMarker(pk, keys.client_msg_sk(client_msg_id), seq=seq, expires_at=expires))
    closed = spec.status == SessionStatus.CLOSED
    meta = SessionMeta(
        pk, keys.META_SK, session_id=session_id, customer_id=spec.customer_id, channel=spec.channel,
        locale=spec.locale, status=spec.status, tags=list(spec.tags), started_at=spec.started_at,
        last_message_at=moment if spec.turns else None, closed_at=moment if closed else None,
        turn_count=len(spec.turns), summary_through=0, expires_at=expires,
        **_session_key_fields(session_id=session_id, customer_id=spec.customer_id, started_at=spec.started_at, status=spec.status),
    )
    if spec.turns:
        # Unsummarised since its first turn: the summary sweep will find it (as after live appends).
        meta.summary_due_pk = summary_due_pk(session_id=session_id)
        meta.summary_due_sk = keys.ts_str(spec.started_at + timedelta(seconds=spec.seconds_between_turns))
    return items, meta


def _write(items: list[ChatItem]) -> None:
    with ChatItem.batch_write() as batch:  # retries unprocessed items itself
        for item in items:
            batch.save(item)


def sessions_bulk_load(*, specs: Iterable[SessionSpec], threads: int = 8,
                       progress: Callable[[int, int], None] = lambda sessions, turns: None) -> tuple[int, int]:
    """Write whole sessions with parallel batch writes. Returns (sessions, turns) written.

    ``progress(sessions_done, turns_done)`` is called after each session, from the caller's thread.
    """
    def load(spec: SessionSpec) -> int:
        items, meta = _items_for(spec)
        with dynamo.dax_bypassed():
            _write(items)
            _write([meta])
        return len(spec.turns)

    sessions = turns = 0
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for count in pool.map(load, specs):
            sessions += 1
            turns += count
            progress(sessions, turns)
    return sessions, turns
