"""Exports for staff: sessions with every turn as streamed JSON or CSV (the HTTP response that
carries them is ``sessions_app.downloads``, shared by the console and the admin).

Everything is lazy (turn Queries are paged by PynamoDB, sessions listed page by page), so an
export of thousands of sessions streams in flat memory.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from decimal import Decimal

from .. import keys
from ..exceptions import InvalidInput
from ..models import SessionMeta, Turn
from .browse import session_find
from .filters import SessionFilter
from .presenters import json_bytes, session_dict, summary_dict, turn_dict
from .sessions import summary_latest

EXPORT_MAX_SESSIONS = 10_000
EXPORT_PAGE = 100
EXPORT_FORMATS = {"json": "application/json; charset=utf-8", "csv": "text/csv; charset=utf-8"}
CSV_COLUMNS = ["session_id", "customer_id", "channel", "locale", "status", "started_at", "seq", "role",
               "created_at", "model", "latency_ms", "tokens_in", "tokens_out", "text"]


def export_format(value: str) -> str:
    """``value`` if it names an export format, else ``InvalidInput`` naming ``format``."""
    if value not in EXPORT_FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(EXPORT_FORMATS)}", field="format")
    return value


def session_turns_all(*, session_id: str) -> Iterator[Turn]:
    """Every turn, oldest first; PynamoDB pages the Query lazily, so memory stays flat."""
    return Turn.query(keys.session_pk(session_id), Turn.sk.startswith(keys.TURN_PREFIX))


def session_iter_filtered(*, filters: SessionFilter, max_sessions: int = EXPORT_MAX_SESSIONS) -> Iterator[SessionMeta]:
    """Every session matching ``filters``, page by page through the same listing as the console."""
    cursor, served = None, 0
    while served < max_sessions:
        page = session_find(filters=filters, cursor=cursor, limit=min(EXPORT_PAGE, max_sessions - served))
        for match in page.matches:
            yield match.meta
        served += len(page.matches)
        cursor = page.cursor
        if cursor is None:
            return


def export_json_chunks(*, sessions: Iterable[SessionMeta]) -> Iterator[bytes]:
    """``{"sessions": [{"session", "summary", "turns": [...]}, ...]}``, one turn per chunk."""
    yield b'{"sessions":['
    for n, meta in enumerate(sessions):
        head = {"session": session_dict(meta), "summary": summary_dict(summary_latest(meta=meta))}
        prefix = b"," if n else b""
        yield prefix + json_bytes(head)[:-1] + b',"turns":['
        for i, turn in enumerate(session_turns_all(session_id=meta.session_id)):
            yield (b"," if i else b"") + json_bytes(turn_dict(turn))
        yield b"]}"
    yield b"]}\n"


def export_csv_chunks(*, sessions: Iterable[SessionMeta]) -> Iterator[bytes]:
    """One row per turn, with the session's columns repeated (spreadsheet-friendly, BOM for Excel).
    Every row goes through :func:`_csv_cell`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> bytes:
        data = buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        return data

    def row(cells: Iterable[object]) -> bytes:
        writer.writerow([_csv_cell(cell) for cell in cells])
        return flush()

    yield "\ufeff".encode() + row(CSV_COLUMNS)
    for meta in sessions:
        s = session_dict(meta)
        for turn in session_turns_all(session_id=meta.session_id):
            t = turn_dict(turn)
            yield row([s["session_id"], s["customer_id"], s["channel"], s["locale"], s["status"], s["started_at"],
                       t["seq"], t["role"], t["created_at"], t["model"], t["latency_ms"], t["tokens_in"],
                       t["tokens_out"], t["text"]])


# A spreadsheet runs a cell that starts with one of these as a formula (a tab or a line break
# first is stripped by some, leaving the formula).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def _csv_cell(value: object) -> object:
    """One CSV cell, safe to open in a spreadsheet: None is empty, a number (int, float,
    Decimal — never a bool) stays a number, and any text that starts like a formula gets a
    leading ``'`` — whatever the column, so a text that merely looks like arithmetic (``-1+2``)
    is shown, not computed. Every stored value is someone's input: chat text and ``model`` from
    the bot, ids and tags from its API, summaries from a model reading customers' words."""
    if value is None:
        return ""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return value
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text
