"""The embedded engine: SQLite FTS5 in a file of its own (``SEARCH_SQLITE_PATH``), so `make run`
needs no search server. One writer at a time (SQLite's rule; WAL lets readers go on meanwhile):
it suits one host's indexer, not a fleet — that is the PostgreSQL engine's job.

Tables: ``search_session`` (the filter fields of each session, its TTL, its tombstone),
``search_doc`` (one row per turn or summary: the original text, keyed by session, kind and seq)
and ``search_fts`` (FTS5, rowid = search_doc's, the analysed ``terms`` and ``chars`` of
``text.index_terms``). The ``ascii`` tokenizer splits on the spaces the analysis put there and
nothing else: the analysis is ours (``text.py``), the same as the other engine's.
"""

from __future__ import annotations

import functools
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Iterable

from ..clock import utcnow
from ..exceptions import StoreUnavailable
from .engine import (
    NEWEST,
    Hit,
    HitPage,
    IndexBatch,
    IndexState,
    SearchFilter,
    check_order,
    cursor_decode,
    cursor_encode,
    day_bounds_ms,
    from_ms,
    ms,
)
from .text import Clause, index_terms, query_clauses

_SCHEMA = """
CREATE TABLE IF NOT EXISTS search_session (
    session_id TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    status TEXT NOT NULL,
    started_ms INTEGER NOT NULL,
    expires_ms INTEGER,
    deleted_ms INTEGER
);
CREATE TABLE IF NOT EXISTS search_doc (
    id INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    seq INTEGER NOT NULL,
    role TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    text TEXT NOT NULL,
    UNIQUE (session_id, kind, seq)
);
CREATE INDEX IF NOT EXISTS search_doc_newest ON search_doc (created_ms DESC, id DESC);
CREATE VIRTUAL TABLE IF NOT EXISTS search_fts USING fts5(terms, chars, tokenize = 'ascii');
CREATE TABLE IF NOT EXISTS search_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _unavailable(method):
    """SQLite's failures of the file (locked past the timeout, unreadable, not a database) as
    ``StoreUnavailable``: the API answers 503, the change feed retries the batch. Our own
    mistakes (integrity, programming errors) stay what they are."""
    @functools.wraps(method)
    def guarded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"search index {self.path}: {exc}") from exc
    return guarded


def _match(clauses: list[Clause]) -> str:
    # Terms hold only letters, digits and CJK (text.py): quoting is for FTS5's syntax, not escaping.
    return " AND ".join(f'{c.field} : "{" ".join(c.phrase)}"' for c in clauses)


class SqliteEngine:
    name = "sqlite"

    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = str(path)
        self.timeout = timeout  # how long a writer waits for the write lock
        self._local = threading.local()  # one connection per thread (sqlite3's rule)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @_unavailable
    def ensure(self) -> None:
        self._conn().executescript(_SCHEMA)

    def _write(self):
        return _Transaction(self._conn())

    # --- writes -----------------------------------------------------------------------------
    @_unavailable
    def apply(self, batch: IndexBatch) -> int:
        written = 0
        with self._write() as conn:
            ids = {s.session_id for s in batch.sessions} | {d.session_id for d in batch.docs}
            dead = _tombstoned(conn, ids)
            for s in batch.sessions:
                if s.session_id in dead:
                    continue
                conn.execute(
                    "INSERT INTO search_session (session_id, customer_id, channel, status, started_ms, expires_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (session_id) DO UPDATE SET"
                    " customer_id = excluded.customer_id, channel = excluded.channel, status = excluded.status,"
                    " started_ms = excluded.started_ms, expires_ms = excluded.expires_ms",
                    (s.session_id, s.customer_id, s.channel, s.status, ms(s.started_at),
                     ms(s.expires_at) if s.expires_at else None))
            for doc in batch.docs:
                if doc.session_id in dead:
                    continue
                row = conn.execute(
                    "INSERT INTO search_doc (session_id, kind, seq, role, created_ms, text) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (session_id, kind, seq) DO UPDATE SET role = excluded.role,"
                    " created_ms = excluded.created_ms, text = excluded.text RETURNING id",
                    (doc.session_id, doc.kind, int(doc.seq), doc.role, ms(doc.created_at), doc.text)).fetchone()
                terms = index_terms(doc.text)
                conn.execute("INSERT OR REPLACE INTO search_fts (rowid, terms, chars) VALUES (?, ?, ?)",
                             (row[0], terms.terms, terms.chars))
                written += 1
            for session_id, kind, seq in batch.doc_deletes:
                row = conn.execute("DELETE FROM search_doc WHERE session_id = ? AND kind = ? AND seq = ? RETURNING id",
                                   (session_id, kind, int(seq))).fetchone()
                if row:
                    conn.execute("DELETE FROM search_fts WHERE rowid = ?", (row[0],))
            for session_id in batch.session_deletes:
                _session_delete(conn, session_id)
            if batch.newest_change is not None:
                conn.execute(
                    "INSERT INTO search_state (name, value) VALUES ('newest_change_ms', ?) ON CONFLICT (name)"
                    " DO UPDATE SET value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))",
                    (str(ms(batch.newest_change)),))
        return written

    @_unavailable
    def session_delete(self, session_id: str) -> int:
        with self._write() as conn:
            return _session_delete(conn, session_id)

    @_unavailable
    def progress_set(self, name: str, value: str | None) -> None:
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM search_state WHERE name = ?", (f"progress:{name}",))
            else:
                conn.execute("INSERT INTO search_state (name, value) VALUES (?, ?) ON CONFLICT (name)"
                             " DO UPDATE SET value = excluded.value", (f"progress:{name}", value))

    # --- reads ------------------------------------------------------------------------------
    @_unavailable
    def sessions_known(self, session_ids: Iterable[str]) -> set[str]:
        ids = list(set(session_ids))
        known: set[str] = set()
        for start in range(0, len(ids), 500):  # SQLite's bound-parameter limit
            part = ids[start:start + 500]
            known.update(r[0] for r in self._conn().execute(
                f"SELECT session_id FROM search_session WHERE session_id IN ({','.join('?' * len(part))})", part))
        return known

    @_unavailable
    def progress_get(self, name: str) -> str | None:
        row = self._conn().execute("SELECT value FROM search_state WHERE name = ?", (f"progress:{name}",)).fetchone()
        return row[0] if row else None

    @_unavailable
    def state(self) -> IndexState:
        conn = self._conn()
        row = conn.execute("SELECT value FROM search_state WHERE name = 'newest_change_ms'").fetchone()
        sessions = conn.execute("SELECT count(*) FROM search_session WHERE deleted_ms IS NULL").fetchone()[0]
        return IndexState(newest_change_at=from_ms(int(row[0])) if row else None, sessions=sessions)

    @_unavailable
    def search(self, query: str, *, filters: SearchFilter | None = None, order: str = NEWEST,
               limit: int = 50, cursor: str | None = None, now: datetime | None = None) -> HitPage:
        check_order(order)
        clauses = query_clauses(query)
        if not clauses:
            return HitPage(hits=[], cursor=None)
        filters = filters or SearchFilter()
        key = "d.created_ms" if order == NEWEST else "bm25(search_fts)"
        where = ["search_fts MATCH ?", "s.deleted_ms IS NULL", "(s.expires_ms IS NULL OR s.expires_ms > ?)"]
        args: list = [_match(clauses), ms(now or utcnow())]
        lo, hi = day_bounds_ms(filters)
        for sql, value in (("s.started_ms >= ?", lo), ("s.started_ms < ?", hi), ("s.channel = ?", filters.channel),
                           ("s.status = ?", filters.status), ("s.customer_id = ?", filters.customer_id)):
            if value is not None:
                where.append(sql)
                args.append(value)
        if cursor:
            last_key, last_id = cursor_decode(cursor, order)
            # newest: time descending; relevance: bm25 ascending (FTS5's best is the most negative).
            worse = "<" if order == NEWEST else ">"
            where.append(f"({key} {worse} ? OR ({key} = ? AND d.id < ?))")
            args += [last_key, last_key, last_id]
        sql = (f"SELECT d.id, d.session_id, d.seq, d.role, d.text, d.created_ms, s.customer_id, s.channel, d.kind,"
               f" {key} FROM search_fts JOIN search_doc d ON d.id = search_fts.rowid"
               f" JOIN search_session s ON s.session_id = d.session_id WHERE {' AND '.join(where)}"
               f" ORDER BY {key} {'DESC' if order == NEWEST else 'ASC'}, d.id DESC LIMIT ?")
        args.append(limit + 1)
        rows = self._conn().execute(sql, args).fetchall()
        hits = [Hit(session_id=r[1], seq=r[2], role=r[3], text=r[4], created_at=from_ms(r[5]), customer_id=r[6],
                    channel=r[7], kind=r[8]) for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return HitPage(hits=hits, cursor=cursor_encode(order, last[9], last[0]) if last else None)


def _tombstoned(conn: sqlite3.Connection, session_ids: set[str]) -> set[str]:
    ids = list(session_ids)
    dead: set[str] = set()
    for start in range(0, len(ids), 500):
        part = ids[start:start + 500]
        dead.update(r[0] for r in conn.execute(
            f"SELECT session_id FROM search_session WHERE deleted_ms IS NOT NULL"
            f" AND session_id IN ({','.join('?' * len(part))})", part))
    return dead


def _session_delete(conn: sqlite3.Connection, session_id: str) -> int:
    ids = [r[0] for r in conn.execute("DELETE FROM search_doc WHERE session_id = ? RETURNING id", (session_id,))]
    conn.executemany("DELETE FROM search_fts WHERE rowid = ?", [(i,) for i in ids])
    # The tombstone: a turn of this session still on its way through the change feed stays out.
    conn.execute("INSERT INTO search_session (session_id, customer_id, channel, status, started_ms, deleted_ms)"
                 " VALUES (?, '', '', '', 0, ?) ON CONFLICT (session_id) DO UPDATE SET deleted_ms = excluded.deleted_ms",
                 (session_id, ms(utcnow())))
    return len(ids)


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT, rolled back on any error: the write lock is taken up front so
    two writers queue on ``timeout`` instead of failing with SQLITE_BUSY halfway."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
