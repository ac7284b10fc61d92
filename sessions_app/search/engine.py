"""The search engines' one interface: what an indexed turn is, what a query answers, and the
query semantics both engines keep (``text.query_clauses``: every clause must match; newest first;
a keyset cursor). The engines: ``sqlite_engine`` (embedded) and, as it lands, PostgreSQL."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Protocol

from ..exceptions import InvalidInput


@dataclass(frozen=True)
class TurnDoc:
    """One turn as the index keeps it: its text and what the filters need."""

    session_id: str
    seq: int
    role: str
    text: str
    created_at: datetime
    customer_id: str
    channel: str


@dataclass(frozen=True)
class Hit:
    session_id: str
    seq: int
    role: str
    text: str  # the original text (the snippet is cut from it)
    created_at: datetime
    customer_id: str
    channel: str


@dataclass(frozen=True)
class HitPage:
    hits: list[Hit]  # newest first
    cursor: str | None  # the next page, None at the end


class SearchEngine(Protocol):
    def ensure(self) -> None: ...
    def index(self, docs: Iterable[TurnDoc]) -> int: ...
    def session_delete(self, session_id: str) -> int: ...
    def search(self, query: str, *, limit: int = 50, cursor: str | None = None) -> HitPage: ...


def cursor_encode(created_ms: int, tiebreak: int | str) -> str:
    raw = json.dumps([created_ms, tiebreak], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cursor_decode(cursor: str) -> tuple[int, int | str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_ms, tiebreak = json.loads(raw)
        if not isinstance(created_ms, int) or not isinstance(tiebreak, (int, str)):
            raise ValueError
        return created_ms, tiebreak
    except (ValueError, TypeError) as exc:
        raise InvalidInput("invalid cursor", field="cursor") from exc
