"""The embedded engine: SQLite FTS5 in a file of its own (``SEARCH_SQLITE_PATH``), so `make run`
needs no search server. One writer at a time (SQLite's rule; WAL lets readers go on meanwhile):
it suits one host's indexer, not a fleet — that is the PostgreSQL engine's job.

Tables: ``turn_doc`` (one row per turn: the filter fields and the original text, keyed by
session and seq) and ``turn_fts`` (FTS5, rowid = turn_doc's, the analysed ``terms`` and
``chars`` of ``text.index_terms``). The ``ascii`` tokenizer splits on the spaces the analysis
put there and nothing else: the analysis is ours (``text.py``), the same as the other engine's.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from .engine import Hit, HitPage, TurnDoc, cursor_decode, cursor_encode
from .text import Clause, index_terms, query_clauses

_SCHEMA = """
CREATE TABLE IF NOT EXISTS turn_doc (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    customer_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (session_id, seq)
);
CREATE INDEX IF NOT EXISTS turn_doc_newest ON turn_doc (created_ms DESC, id DESC);
CREATE VIRTUAL TABLE IF NOT EXISTS turn_fts USING fts5(terms, chars, tokenize = 'ascii');
"""


def _ms(value: datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return int(value.timestamp() * 1000)


def _match(clauses: list[Clause]) -> str:
    # Terms hold only letters, digits and CJK (text.py): quoting is for FTS5's syntax, not escaping.
    return " AND ".join(f'{c.field} : "{" ".join(c.phrase)}"' for c in clauses)


class SqliteEngine:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._local = threading.local()  # one connection per thread (sqlite3's rule)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def ensure(self) -> None:
        self._conn().executescript(_SCHEMA)

    def index(self, docs: Iterable[TurnDoc]) -> int:
        """Add or replace the turns (by session and seq): idempotent, as the change feed's
        at-least-once delivery needs. Returns how many were written."""
        conn = self._conn()
        written = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for doc in docs:
                row = conn.execute(
                    "INSERT INTO turn_doc (session_id, seq, role, created_ms, customer_id, channel, text)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (session_id, seq) DO UPDATE SET role = excluded.role,"
                    " created_ms = excluded.created_ms, customer_id = excluded.customer_id,"
                    " channel = excluded.channel, text = excluded.text RETURNING id",
                    (doc.session_id, int(doc.seq), doc.role, _ms(doc.created_at), doc.customer_id,
                     doc.channel, doc.text)).fetchone()
                terms = index_terms(doc.text)
                conn.execute("INSERT OR REPLACE INTO turn_fts (rowid, terms, chars) VALUES (?, ?, ?)",
                             (row[0], terms.terms, terms.chars))
                written += 1
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return written

    def session_delete(self, session_id: str) -> int:
        """Every turn of the session out of the index (privacy delete, TTL expiry)."""
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            ids = [r[0] for r in conn.execute("SELECT id FROM turn_doc WHERE session_id = ?", (session_id,))]
            conn.executemany("DELETE FROM turn_fts WHERE rowid = ?", [(i,) for i in ids])
            conn.execute("DELETE FROM turn_doc WHERE session_id = ?", (session_id,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return len(ids)

    def search(self, query: str, *, limit: int = 50, cursor: str | None = None) -> HitPage:
        clauses = query_clauses(query)
        if not clauses:
            return HitPage(hits=[], cursor=None)
        sql = ("SELECT d.id, d.session_id, d.seq, d.role, d.text, d.created_ms, d.customer_id, d.channel"
               " FROM turn_fts JOIN turn_doc d ON d.id = turn_fts.rowid WHERE turn_fts MATCH ?")
        args: list = [_match(clauses)]
        if cursor:
            created_ms, last_id = cursor_decode(cursor)
            sql += " AND (d.created_ms < ? OR (d.created_ms = ? AND d.id < ?))"
            args += [created_ms, created_ms, last_id]
        sql += " ORDER BY d.created_ms DESC, d.id DESC LIMIT ?"
        args.append(limit + 1)
        rows = self._conn().execute(sql, args).fetchall()
        hits = [Hit(session_id=r[1], seq=r[2], role=r[3], text=r[4],
                    created_at=datetime.fromtimestamp(r[5] / 1000, tz=timezone.utc), customer_id=r[6], channel=r[7])
                for r in rows[:limit]]
        next_cursor = cursor_encode(rows[limit - 1][5], rows[limit - 1][0]) if len(rows) > limit else None
        return HitPage(hits=hits, cursor=next_cursor)
