"""Reads of the hand-off: a session's state as the bot sees it, the "needs a human" queue, and
who owns what. Index Queries only (``handoff_queue``, ``by_owner``, ``by_status``), never a Scan."""

from __future__ import annotations

import heapq
from itertools import islice

from django.conf import settings

from .. import dynamo, keys
from ..models import SessionMeta, SessionStatus
from .sessions import session_get_many

BOT, WAITING, HUMAN = "bot", "waiting", "human"


def _iso(value) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def handoff_state(meta: SessionMeta) -> dict:
    """``{state, owner, since, reason}``: ``bot`` answers; ``waiting`` — the bot asked for a
    human and nobody has taken over (tell the customer someone is coming); ``human`` — a staff
    member (``owner``, their display name) has it since ``since``: the bot stays silent."""
    if meta.status != SessionStatus.HANDED_OFF:
        return {"state": BOT, "owner": None, "since": None, "reason": None}
    if meta.owner:
        return {"state": HUMAN, "owner": meta.owner_name or meta.owner, "since": _iso(meta.owner_since),
                "reason": meta.handoff_reason}
    return {"state": WAITING, "owner": None, "since": _iso(meta.handoff_at), "reason": meta.handoff_reason}


def handoff_queue(*, limit: int = 50) -> list[SessionMeta]:
    """Unowned hand-offs, longest waiting first: each queue shard's oldest ``limit`` merged."""
    shards = settings.DYNAMODB_STATUS_SHARDS
    # Index Queries go to DynamoDB: DAX's query cache is not invalidated by writes, and would
    # keep a session in the queue after its takeover (docs/architecture.md §Table design).
    with dynamo.dax_bypassed():
        streams = [[(i.gsi6sk, i.session_id) for i in SessionMeta.handoff_queue.query(keys.waiting_pk(s), limit=limit)]
                   for s in range(shards)]
    ids = [session_id for _, session_id in islice(heapq.merge(*streams), limit)]
    # Fresh META: one that was taken over since the index answered is no longer waiting.
    return [m for m in session_get_many(session_ids=ids) if m.status == SessionStatus.HANDED_OFF and not m.owner]


def handoff_queue_count() -> int:
    """How many hand-offs wait for a human (a COUNT Query per queue shard)."""
    with dynamo.dax_bypassed():
        return sum(SessionMeta.handoff_queue.count(keys.waiting_pk(s)) for s in range(settings.DYNAMODB_STATUS_SHARDS))


def sessions_owned(*, username: str | None = None) -> list[SessionMeta]:
    """The sessions ``username`` owns (the console's "mine", newest take-over first), or with no
    username every owned session (the idle sweep: handed-off sessions by the by_status index)."""
    with dynamo.dax_bypassed():
        if username:
            ids = [i.session_id for i in SessionMeta.by_owner.query(keys.owner_pk(username), scan_index_forward=False)]
        else:
            ids = [i.session_id for s in range(settings.DYNAMODB_STATUS_SHARDS)
                   for i in SessionMeta.by_status.query(keys.status_pk(SessionStatus.HANDED_OFF, s))]
    if username:
        return [m for m in session_get_many(session_ids=ids) if m.owner == username]
    return [m for m in session_get_many(session_ids=ids) if m.owner]
