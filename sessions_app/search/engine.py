"""The search engines' one interface: what the index keeps, what a query answers, and the
semantics both engines keep (docs/architecture.md §Search):

- every clause of ``text.query_clauses`` must match (AND of phrases);
- a turn is returned only while its session is in the index, not deleted (a tombstone) and not
  past its TTL (``expires_at``: DynamoDB's TTL deletes up to days late, the index does not wait);
- the filters are the session list's: the session's start day (UTC, inclusive), channel, status,
  customer;
- ``newest`` orders by the turn's time, ``relevance`` by the engine's rank (FTS5's bm25,
  PostgreSQL's ts_rank_cd: the same "more of the query, in less text" idea, not the same
  numbers), both with a keyset cursor that neither skips nor repeats while the index stands still.

The engines: ``sqlite_engine`` (embedded, the default) and ``postgres_engine`` (production).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Iterable, Protocol

from ..exceptions import InvalidInput

TURN, SUMMARY = "turn", "summary"  # what a document is: a turn's text, or a summary's
NEWEST, RELEVANCE = "newest", "relevance"
ORDERS = (NEWEST, RELEVANCE)


@dataclass(frozen=True)
class SessionDoc:
    """A session as the filters need it (from its META item)."""

    session_id: str
    customer_id: str
    channel: str
    status: str
    started_at: datetime
    expires_at: datetime | None = None


@dataclass(frozen=True)
class TurnDoc:
    """One turn (or summary: ``kind`` SUMMARY, ``seq`` its through_seq, role "summary")."""

    session_id: str
    seq: int
    role: str
    text: str
    created_at: datetime
    kind: str = TURN


@dataclass(frozen=True)
class SearchFilter:
    day_from: date | None = None  # the session's start day, UTC, inclusive; None: no bound
    day_to: date | None = None
    channel: str | None = None
    status: str | None = None
    customer_id: str | None = None


@dataclass(frozen=True)
class Hit:
    session_id: str
    seq: int
    role: str
    text: str  # the original text (the snippet is cut from it)
    created_at: datetime
    customer_id: str
    channel: str
    kind: str = TURN


@dataclass(frozen=True)
class HitPage:
    hits: list[Hit]
    cursor: str | None  # the next page, None at the end


@dataclass
class IndexBatch:
    """What one batch of changes does to the index, applied by ``SearchEngine.apply`` in one
    transaction, in this order: sessions, documents, document deletes, session deletes. (Within
    a batch a delete is final: session ids are never reused, so it may as well come last.)"""

    sessions: list[SessionDoc] = field(default_factory=list)
    docs: list[TurnDoc] = field(default_factory=list)
    doc_deletes: list[tuple[str, str, int]] = field(default_factory=list)  # (session_id, kind, seq)
    session_deletes: list[str] = field(default_factory=list)
    newest_change: datetime | None = None  # the newest change this batch reflects (index lag)

    def __bool__(self) -> bool:
        return bool(self.sessions or self.docs or self.doc_deletes or self.session_deletes or self.newest_change)


@dataclass(frozen=True)
class IndexState:
    newest_change_at: datetime | None  # of every batch applied so far
    sessions: int  # sessions in the index (tombstones not counted)


class SearchEngine(Protocol):
    name: str

    def ensure(self) -> None:
        """Create the schema if missing (idempotent)."""

    def apply(self, batch: IndexBatch) -> int:
        """Apply the batch atomically; idempotent (the change feed delivers at least once). A
        session that was deleted stays deleted: its tombstone makes later sessions/docs of it no-ops.
        Returns how many documents were written."""

    def sessions_known(self, session_ids: Iterable[str]) -> set[str]:
        """Which of these sessions the index has a row for (tombstones included)."""

    def session_delete(self, session_id: str) -> int:
        """Every document of the session out, a tombstone in: the privacy delete's step.
        Returns how many documents were removed."""

    def search(self, query: str, *, filters: SearchFilter | None = None, order: str = NEWEST,
               limit: int = 50, cursor: str | None = None, now: datetime | None = None) -> HitPage: ...

    def state(self) -> IndexState: ...

    def progress_get(self, name: str) -> str | None:
        """A resumable job's saved position (``search_reindex``)."""

    def progress_set(self, name: str, value: str | None) -> None: ...

    def close(self) -> None: ...


def ms(value: datetime) -> int:
    """Epoch milliseconds (naive datetimes are UTC): both engines store times this way."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


def from_ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def day_bounds_ms(filters: SearchFilter) -> tuple[int | None, int | None]:
    """The start-day filter as [from, to) epoch milliseconds."""
    lo = hi = None
    if filters.day_from is not None:
        lo = ms(datetime(filters.day_from.year, filters.day_from.month, filters.day_from.day, tzinfo=timezone.utc))
    if filters.day_to is not None:
        hi = ms(datetime(filters.day_to.year, filters.day_to.month, filters.day_to.day, tzinfo=timezone.utc)) + 86_400_000
    return lo, hi


def check_order(order: str) -> str:
    if order not in ORDERS:
        raise InvalidInput(f"order must be one of {', '.join(ORDERS)}", field="order")
    return order


def cursor_encode(order: str, key: int | float, doc_id: int) -> str:
    """The position after the last hit of a page: the order it was read in, that hit's sort key
    (time in ms, or rank) and its row id (the tiebreak)."""
    raw = json.dumps([order, key, doc_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str, order: str) -> tuple[int | float, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        cursor_order, key, doc_id = json.loads(raw)
        if not isinstance(key, (int, float)) or isinstance(key, bool) or not isinstance(doc_id, int):
            raise ValueError
    except (ValueError, TypeError) as exc:
        raise InvalidInput("invalid cursor", field="cursor") from exc
    if cursor_order != order:
        raise InvalidInput(f"this cursor belongs to order={cursor_order}", field="cursor")
    return key, doc_id
