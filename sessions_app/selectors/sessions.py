"""Reads of one session: META, turn pages, the latest summary, the bot's context."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

from .. import dynamo, keys
from ..exceptions import InvalidInput, SessionNotFound
from ..models import SessionMeta, Summary
from .raw import ItemView, session_decoder, summary_decoder, turn_decoder

# BatchGetItem's limit of keys per request.
BATCH_GET_MAX_KEYS = 100


def session_get(*, session_id: str, consistent: bool = False) -> SessionMeta:
    """META of one session; through DAX unless ``consistent`` (then straight from DynamoDB)."""
    try:
        return SessionMeta.get(keys.session_pk(session_id), keys.META_SK, consistent_read=consistent)
    except SessionMeta.DoesNotExist:
        raise SessionNotFound(f"session {session_id} does not exist", field="session_id") from None


def _key(pk: str, sk: str) -> dict:
    return {"PK": {"S": pk}, "SK": {"S": sk}}


def session_view(*, session_id: str, consistent: bool = False) -> ItemView:
    """META of one session as :func:`session_get` reads it, decoded without a model (the hot
    reads: see ``raw.py``). One hand-built GetItem: no expressions for the DAX client to parse."""
    request = {"TableName": SessionMeta.Meta.table_name, "Key": _key(keys.session_pk(session_id), keys.META_SK)}
    if consistent:
        request["ConsistentRead"] = True
    item = dynamo.read_raw("GetItem", request).get("Item")
    if not item:
        raise SessionNotFound(f"session {session_id} does not exist", field="session_id")
    return session_decoder.decode(item)


def _batch_get(*, pk: str, sort_keys: list[str], consistent: bool) -> dict[str, dict]:
    """The items of one partition with these sort keys that exist, by sort key (raw). One
    BatchGetItem per 100 keys, UnprocessedKeys asked again (with a short backoff)."""
    table = SessionMeta.Meta.table_name
    found: dict[str, dict] = {}
    for start in range(0, len(sort_keys), BATCH_GET_MAX_KEYS):
        spec: dict = {"Keys": [_key(pk, sk) for sk in sort_keys[start:start + BATCH_GET_MAX_KEYS]]}
        if consistent:
            spec["ConsistentRead"] = True
        pending: dict | None = {table: spec}
        attempt = 0
        while pending:
            if attempt:
                time.sleep(min(0.025 * 2 ** attempt, 1.0))
            reply = dynamo.read_raw("BatchGetItem", {"RequestItems": pending})
            for item in reply.get("Responses", {}).get(table, ()):
                found[item["SK"]["S"]] = item
            pending = reply.get("UnprocessedKeys") or None
            attempt += 1
    return found


def _turns_and_summary(*, session_id: str, low: int, high: int, summary_through: int,
                       consistent: bool) -> tuple[list[ItemView], ItemView | None]:
    """Turns low..high (oldest first) and the summary through ``summary_through`` (if > 0), by
    their exact keys in one BatchGetItem: served from DAX's item cache, which the writes
    refresh (write-through), and no expressions at all (docs/architecture.md §Read path)."""
    sort_keys = [keys.turn_sk(seq) for seq in range(low, high + 1)]
    n_turns = len(sort_keys)
    summary_sk = keys.summary_sk(summary_through) if summary_through > 0 else None
    if summary_sk is not None:
        sort_keys.append(summary_sk)
    if not sort_keys:
        return [], None
    found = _batch_get(pk=keys.session_pk(session_id), sort_keys=sort_keys, consistent=consistent)
    decode = turn_decoder.decode
    turns = [decode(found[sk]) for sk in sort_keys[:n_turns] if sk in found]
    summary = found.get(summary_sk) if summary_sk is not None else None
    return turns, (summary_decoder.decode(summary) if summary is not None else None)


def _turns_and_summary_exact(*, session_id: str, low: int, high: int, summary_through: int = 0,
                             consistent: bool) -> tuple[list[ItemView], ItemView | None, bool]:
    """``_turns_and_summary``, and if an eventually consistent read came back short (a replica or
    a cache that had not seen the newest turn yet) → read again strongly consistent. Returns
    turns, summary, retried."""
    turns, summary = _turns_and_summary(session_id=session_id, low=low, high=high,
                                        summary_through=summary_through, consistent=consistent)
    if not consistent and len(turns) < max(0, high - low + 1):
        turns, summary = _turns_and_summary(session_id=session_id, low=low, high=high,
                                            summary_through=summary_through, consistent=True)
        return turns, summary, True
    return turns, summary, False


def session_get_many(*, session_ids: Iterable[str]) -> list[SessionMeta]:
    """META of each id that exists, in the order given (one BatchGetItem per 100 ids)."""
    ids = list(dict.fromkeys(session_ids))
    if not ids:
        return []
    found = {m.session_id: m for m in SessionMeta.batch_get([(keys.session_pk(i), keys.META_SK) for i in ids])}
    return [found[i] for i in ids if i in found]


@dataclass(frozen=True)
class TurnPage:
    turns: list[ItemView]  # newest first (decoded without models: raw.py)
    cursor: str | None  # for the next (older) page; None when this page reaches turn 1
    turn_count: int


TURNS_CURSOR = "turns"
# The state of a turns cursor: the session, and the seq the next (older) page ends before.
TURNS_CURSOR_SHAPE = {"session": keys.cursor_text(), "before": keys.cursor_int(2, keys.MAX_SEQ + 1)}


def turns_page(*, session_id: str, cursor: str | None = None, limit: int = 50,
               meta: SessionMeta | ItemView | None = None) -> TurnPage:
    """One page of a session's turns, newest first. The cursor holds the next page's upper
    sequence number (signed), so a 10,000-turn session pages by exact keys: one BatchGetItem
    per 100 turns of the page (``_turns_and_summary``)."""
    if not 1 <= limit <= 500:
        raise InvalidInput("limit must be between 1 and 500", field="limit")
    meta = meta or session_view(session_id=session_id)
    count = int(meta.turn_count)
    if cursor:
        state = keys.cursor_decode(cursor, kind=TURNS_CURSOR, shape=TURNS_CURSOR_SHAPE).state
        if state["session"] != session_id:
            raise keys.InvalidCursor("cursor belongs to another session", field="cursor")
        high = min(state["before"] - 1, count)
    else:
        high = count
    low = max(1, high - limit + 1)
    turns, _, _ = _turns_and_summary_exact(session_id=session_id, low=low, high=high, consistent=False)
    turns.reverse()
    next_cursor = None
    if low > 1:
        next_cursor = keys.cursor_encode(keys.Cursor(kind=TURNS_CURSOR, state={"session": session_id, "before": low}))
    return TurnPage(turns=turns, cursor=next_cursor, turn_count=count)


def summary_latest(*, meta: SessionMeta, consistent: bool = False) -> Summary | None:
    """The newest summary, found by the key META records (a GetItem, not a Query: the item
    cache is refreshed by the write, the query cache would not be)."""
    through = int(meta.summary_through or 0)
    if through <= 0:
        return None
    try:
        return Summary.get(meta.pk, keys.summary_sk(through), consistent_read=consistent)
    except Summary.DoesNotExist:
        return None


@dataclass
class Context:
    """What the bot needs for its next answer, with where each part was read from."""

    # Decoded without models (raw.py): the same attributes and values a model would have.
    meta: ItemView
    turns: list[ItemView]  # oldest first
    summary: ItemView | None
    provenance: dict = field(default_factory=dict)


def context_read(*, session_id: str, turns: int, min_seq: int = 0, consistent: bool = False) -> Context:
    """META, the last ``turns`` turns and the latest summary, from DynamoDB (through DAX when on).

    Read-your-writes: ``min_seq`` is the highest turn the caller knows to exist (its own last
    append, or the hint the write path leaves in Redis). META read through DAX may lag a
    transaction (DAX refreshes its item cache in the background after TransactWriteItems), so a
    META older than ``min_seq`` is re-read strongly consistent; the turn query is bounded by that
    count (see ``_turns_and_summary``). ``consistent`` forces strongly consistent reads throughout (used
    when no hint is available because Redis is down).

    Two hand-built reads (docs/architecture.md §Read path): GetItem META, then one BatchGetItem
    for the turns' and the summary's exact keys — both served by DAX's item cache, no
    expressions, no models.
    """
    started = time.perf_counter()
    with dynamo.routes_recorded() as routes:
        meta = session_view(session_id=session_id, consistent=consistent)
        meta_retry = False
        if int(meta.turn_count) < min_seq and not consistent:
            meta = session_view(session_id=session_id, consistent=True)
            meta_retry = True
        count = int(meta.turn_count)
        recent, summary, turns_retry = _turns_and_summary_exact(
            session_id=session_id, low=max(1, count - turns + 1), high=count,
            summary_through=int(meta.summary_through or 0), consistent=consistent,
        )
    provenance = {
        # Observed, not predicted: the least-cached route any of these reads actually took.
        "source": routes.label,
        "routes": tuple(routes.routes),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        "consistent_retry": meta_retry or turns_retry,
    }
    return Context(meta=meta, turns=recent, summary=summary, provenance=provenance)
