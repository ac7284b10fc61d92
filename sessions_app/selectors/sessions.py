"""Reads of one session: META, turn pages, the latest summary, the bot's context."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterable

from .. import dynamo, keys
from ..exceptions import InvalidInput, SessionNotFound
from ..models import SessionMeta, Summary, Turn


def session_get(*, session_id: str, consistent: bool = False) -> SessionMeta:
    """META of one session; through DAX unless ``consistent`` (then straight from DynamoDB)."""
    try:
        return SessionMeta.get(keys.session_pk(session_id), keys.META_SK, consistent_read=consistent)
    except SessionMeta.DoesNotExist:
        raise SessionNotFound(f"session {session_id} does not exist", field="session_id") from None


def session_get_many(*, session_ids: Iterable[str]) -> list[SessionMeta]:
    """META of each id that exists, in the order given (one BatchGetItem per 100 ids)."""
    ids = list(dict.fromkeys(session_ids))
    if not ids:
        return []
    found = {m.session_id: m for m in SessionMeta.batch_get([(keys.session_pk(i), keys.META_SK) for i in ids])}
    return [found[i] for i in ids if i in found]


def _turn_range(*, session_id: str, low: int, high: int, consistent: bool) -> list[Turn]:
    """Turns low..high (inclusive), oldest first.

    The key condition names the exact range. Turns never change once written, so a DAX query
    cache entry for a range is never wrong — and a new turn changes the range, so the newest
    turn can never hide behind a cached "last N" result (docs/architecture.md §Read path).
    """
    if high < low:
        return []
    return list(Turn.query(
        keys.session_pk(session_id),
        Turn.sk.between(keys.turn_sk(low), keys.turn_sk(high)),
        consistent_read=consistent,
    ))


def _turns_exact(*, session_id: str, low: int, high: int, consistent: bool) -> tuple[list[Turn], bool]:
    """Turns low..high; if an eventually consistent read came back short (a replica or a cached
    result that had not seen the newest turn yet), read again strongly consistent. Returns the
    turns and whether the consistent retry was needed."""
    turns = _turn_range(session_id=session_id, low=low, high=high, consistent=consistent)
    if not consistent and len(turns) < high - low + 1:
        return _turn_range(session_id=session_id, low=low, high=high, consistent=True), True
    return turns, False


@dataclass(frozen=True)
class TurnPage:
    turns: list[Turn]  # newest first
    cursor: str | None  # for the next (older) page; None when this page reaches turn 1
    turn_count: int


TURNS_CURSOR = "turns"
# The state of a turns cursor: the session, and the seq the next (older) page ends before.
TURNS_CURSOR_SHAPE = {"session": keys.cursor_text(), "before": keys.cursor_int(2, keys.MAX_SEQ + 1)}


def turns_page(*, session_id: str, cursor: str | None = None, limit: int = 50, meta: SessionMeta | None = None) -> TurnPage:
    """One page of a session's turns, newest first. The cursor holds the next page's upper
    sequence number (signed), so a 10,000-turn session pages with one small Query per page."""
    if not 1 <= limit <= 500:
        raise InvalidInput("limit must be between 1 and 500", field="limit")
    meta = meta or session_get(session_id=session_id)
    count = int(meta.turn_count)
    if cursor:
        state = keys.cursor_decode(cursor, kind=TURNS_CURSOR, shape=TURNS_CURSOR_SHAPE).state
        if state["session"] != session_id:
            raise keys.InvalidCursor("cursor belongs to another session", field="cursor")
        high = min(state["before"] - 1, count)
    else:
        high = count
    low = max(1, high - limit + 1)
    turns, _ = _turns_exact(session_id=session_id, low=low, high=high, consistent=False)
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

    meta: SessionMeta
    turns: list[Turn]  # oldest first
    summary: Summary | None
    provenance: dict = field(default_factory=dict)


def context_read(*, session_id: str, turns: int, min_seq: int = 0, consistent: bool = False) -> Context:
    """META, the last ``turns`` turns and the latest summary, from DynamoDB (through DAX when on).

    Read-your-writes: ``min_seq`` is the highest turn the caller knows to exist (its own last
    append, or the hint the write path leaves in Redis). META read through DAX may lag a
    transaction (DAX refreshes its item cache in the background after TransactWriteItems), so a
    META older than ``min_seq`` is re-read strongly consistent; the turn query is bounded by that
    count (see ``_turn_range``). ``consistent`` forces strongly consistent reads throughout (used
    when no hint is available because Redis is down).
    """
    started = time.perf_counter()
    with dynamo.routes_recorded() as routes:
        meta = session_get(session_id=session_id, consistent=consistent)
        meta_retry = False
        if int(meta.turn_count) < min_seq and not consistent:
            meta = session_get(session_id=session_id, consistent=True)
            meta_retry = True
        count = int(meta.turn_count)
        recent, turns_retry = _turns_exact(
            session_id=session_id, low=max(1, count - turns + 1), high=count, consistent=consistent
        )
        summary = summary_latest(meta=meta, consistent=consistent)
    provenance = {
        # Observed, not predicted: the least-cached route any of these reads actually took.
        "source": routes.label,
        "routes": tuple(routes.routes),
        "elapsed_ms": round((time.perf_counter() - started) * 1000, 3),
        "consistent_retry": meta_retry or turns_retry,
    }
    return Context(meta=meta, turns=recent, summary=summary, provenance=provenance)
