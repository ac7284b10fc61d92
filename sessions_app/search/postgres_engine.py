"""The production engine: PostgreSQL full-text search over our own analysis (``text.py``), for a
fleet of indexers and readers (``SEARCH_DATABASE_URL``). Same semantics as ``sqlite_engine``; the
tests in tests/search run every case on both.

Tables (in ``schema`` when one is given, else the connection's search_path):

- ``search_session``: a session's filter fields, its TTL and its tombstone (``deleted_ms``).
- ``search_doc``: one row per turn or summary — the original text and two tsvectors, ``terms_tsv``
  and ``chars_tsv`` (``text.index_terms``' two fields), each with a GIN index. PARTITIONED BY
  RANGE (``created_ms``), one partition per UTC month (``search_doc_YYYYMM``), created on demand
  by ``apply`` for the months of a batch's documents. Why by month: retention is then a catalog
  operation — ``partitions_drop_before`` detaches and drops whole months instead of DELETEing
  millions of rows (no bloat, no vacuum debt, no long lock). The upsert key includes the
  partition key, (session_id, kind, seq, created_ms), as PostgreSQL requires of a unique index on
  a partitioned table; a document's time is fixed (a turn's never changes, a summary is written
  once per through_seq), and should one ever move, ``apply`` first deletes the old copy so the
  result is SQLite's (session_id, kind, seq) upsert.
- ``search_state``: ``newest_change_ms`` (only ever moves forward) and resumable jobs' progress.

The tsvectors are built from OUR terms, never by ``to_tsvector``'s parser (which splits on
spaces, and Japanese has none): a literal ``'限定':1 '定版':2 …`` with each term's positions in
text order, cast ``::tsvector``. A query clause becomes the phrase ``'a' <-> 'b'`` (adjacent, in
order: FTS5's phrase), clauses ANDed, against its field's column.

Limits of tsvector, and what this engine does about them so that no text errors and no match is
lost:
- a position is at most 16383 and a lexeme keeps at most 256 positions (more are silently
  clamped / dropped by PostgreSQL). A document whose terms do not fit (more than 16383 terms, or a
  term more than 256 times: far beyond the 16 KB turn limit, but summaries and settings vary) is
  stored with its clamped tsvector *and* its analysed terms (``terms_text``); for it a phrase is
  checked on ``terms_text`` (`` a b `` as a substring of the space-separated terms: adjacency in
  order, exactly FTS5's) instead of on positions, so neither a phrase past the cap is missed nor
  one made up by clamping. Single terms and characters are exact either way (every lexeme stays
  in the tsvector, with at least one position). Its relevance rank uses the clamped positions.
- a lexeme is at most 2047 bytes: a longer term (a 2000-letter "word") is stored, and queried,
  as its first 1900 bytes + ``#`` + its sha256 (``#`` never occurs in a term, so no real term
  collides).
- a tsvector is at most 1 MB of lexemes and positions: a text with more distinct terms than that
  keeps the first ones (logged; about 80 000 distinct words); unreachable with 16 KB turn texts.

Relevance: ``ts_rank_cd`` (cover density: more of the query, closer together), normalisation 1
(divided by 1 + log of the document's length: "in less text", gently — a long summary that is
about the query is not buried under a short passing mention), the two fields' ranks added, as
float8; descending, then id descending. The keyset cursor compares against the very same float8
expression (float8 survives the JSON round trip exactly; the float4 ts_rank_cd returns is cast
before anything else touches it).

Concurrency: one psycopg connection per thread, autocommit off, every call one transaction (no
connection is ever left idle in a transaction: it would hold locks that block partition
maintenance). ``apply`` is one transaction. A delete must stay final against a concurrent
``apply`` of the same session (SQLite serialises writers; PostgreSQL does not): ``apply`` takes a
shared advisory lock per session it touches, a delete an exclusive one, before the tombstones are
read. New partitions are created in a short transaction of their own before the batch's (DDL on
the parent takes a lock readers would queue behind), serialised by an advisory lock so concurrent
creators never fail. A forked child never touches (nor closes) the connection it inherited. A
connection found broken (server restarted, backend terminated) is replaced
and the call retried once (every call is idempotent); otherwise, and when the server cannot be
reached, ``StoreUnavailable`` (transient: the change-feed dispatcher retries it).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from datetime import date, datetime, timezone
from typing import Callable, Iterable, TypeVar

import psycopg
from psycopg import errors, sql

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

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_POS = 16383  # tsvector's largest position
MAX_POSITIONS = 256  # positions a tsvector keeps per lexeme
MAX_LEXEME_BYTES = 2047
MAX_TSVECTOR_BYTES = (1 << 20) - 1  # a tsvector's lexemes and positions (see _tsvector)
STATS_MIN_ROWS = 1000  # a batch this big may change a table's statistics: see _refresh_stats
RANK_NORMALIZATION = 1  # ts_rank_cd: rank / (1 + log(document length))

# Advisory lock classes (the two-int form: class, object), so ours never meet another user's.
_LOCK_SESSION = 0x53455331  # per session id (hashtext): apply shared, delete exclusive
_LOCK_DDL = 0x53455332  # per schema: ensure() and partition creation
_LOCK_RETENTION = 0x53455333  # per schema: partitions_drop_before, one run at a time

_INHERITED: list = []  # connections a forked child inherited: kept from finalisation (see _own_conn)

_PARTITION = re.compile(r"^search_doc_(\d{4})(\d{2})$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS search_session (
    session_id text PRIMARY KEY,
    customer_id text NOT NULL,
    channel text NOT NULL,
    status text NOT NULL,
    started_ms bigint NOT NULL,
    expires_ms bigint,
    deleted_ms bigint
);
-- The session-side filters: without these a filtered query joined every GIN match of a common
-- term in each month walked against a seq scan of all sessions. With them the planner starts from
-- the week's or the customer's sessions at 1M turns, but still not at 10M (README "Measured limits").
CREATE INDEX IF NOT EXISTS search_session_started ON search_session (started_ms);
CREATE INDEX IF NOT EXISTS search_session_customer ON search_session (customer_id, started_ms);
CREATE TABLE IF NOT EXISTS search_doc (
    id bigserial NOT NULL,
    session_id text NOT NULL,
    kind text NOT NULL,
    seq bigint NOT NULL,
    role text NOT NULL,
    created_ms bigint NOT NULL,
    text text NOT NULL,
    terms_tsv tsvector NOT NULL,
    chars_tsv tsvector NOT NULL,
    terms_text text,  -- the analysed terms, only when terms_tsv could not hold every position
    -- Also the session_id index (its leading column): session deletes and doc deletes by
    -- (session_id, kind, seq) use it in every partition; a separate one would only cost writes.
    UNIQUE (session_id, kind, seq, created_ms)
) PARTITION BY RANGE (created_ms);
CREATE INDEX IF NOT EXISTS search_doc_newest ON search_doc (created_ms DESC, id DESC);
CREATE INDEX IF NOT EXISTS search_doc_terms ON search_doc USING gin (terms_tsv);
CREATE INDEX IF NOT EXISTS search_doc_chars ON search_doc USING gin (chars_tsv);
CREATE TABLE IF NOT EXISTS search_state (name text PRIMARY KEY, value text NOT NULL);
"""


# --- tsvector / tsquery literals from our terms ------------------------------------------------
def _quote(lexeme: str) -> str:
    # Terms hold only letters, digits and CJK (text.py); the escaping is defence, not need.
    return "'" + lexeme.replace("\\", "\\\\").replace("'", "''") + "'"


def _lexeme(term: str) -> str:
    raw = term.encode()
    if len(raw) <= MAX_LEXEME_BYTES:
        return term
    head = raw[:1900].decode(errors="ignore")
    return f"{head}#{hashlib.sha256(raw).hexdigest()}"


def _tsvector(terms: str) -> tuple[str, bool]:
    """The tsvector literal of space-separated ``terms`` (positions from 1, in order) and whether
    it lost positions (see the module docstring: such a document also keeps its terms)."""
    positions: dict[str, list[int]] = {}
    count = 0
    for count, term in enumerate(terms.split(), start=1):
        positions.setdefault(_lexeme(term), []).append(count)
    lossy = count > MAX_POS
    parts, size = [], 0
    for lexeme, where in positions.items():
        if len(where) > MAX_POSITIONS:
            lossy = True
            where = where[:MAX_POSITIONS]
        kept = sorted({min(p, MAX_POS) for p in where})
        # What PostgreSQL counts against the limit: the lexeme (2-byte aligned), its positions
        # and their count.
        size += (len(lexeme.encode()) + 1) // 2 * 2 + 2 * (len(kept) + 1)
        if size > MAX_TSVECTOR_BYTES:
            log.warning("search: a text has more distinct terms than a tsvector holds; the rest are not indexed")
            lossy = True
            break
        parts.append(f"{_quote(lexeme)}:{','.join(map(str, kept))}")
    return " ".join(parts), lossy


def _phrase(clause: Clause) -> str:
    return " <-> ".join(_quote(_lexeme(t)) for t in clause.phrase)


def _all_terms(clauses: list[Clause]) -> str:
    return " & ".join(_quote(_lexeme(t)) for c in clauses for t in c.phrase)


def _cover(phrase: tuple[str, ...]) -> list[str]:
    """Enough of a CJK phrase's bigrams to contain every character of it (every other one, and
    the last): what the GIN index is asked for. The phrase itself is checked on the rows found,
    so fewer terms lose nothing — and each term left out is one posting list fewer to intersect
    (a long Japanese query's ます, いし are in most Japanese turns)."""
    if len(phrase) <= 2:
        return list(phrase)
    picked = list(phrase[::2])
    if (len(phrase) - 1) % 2:
        picked.append(phrase[-1])
    return picked


def _gin_terms(clauses: list[Clause]) -> str:
    return " & ".join(_quote(_lexeme(t)) for t in dict.fromkeys(t for c in clauses for t in _cover(c.phrase)))


# --- months and partitions --------------------------------------------------------------------
def _month_of(created_ms: int) -> tuple[int, int]:
    at = from_ms(created_ms)
    return at.year, at.month


def _month_bounds(month: tuple[int, int]) -> tuple[int, int]:
    year, mon = month
    nxt = (year + 1, 1) if mon == 12 else (year, mon + 1)
    return (ms(datetime(year, mon, 1, tzinfo=timezone.utc)),
            ms(datetime(nxt[0], nxt[1], 1, tzinfo=timezone.utc)))


def _partition_name(month: tuple[int, int]) -> str:
    return f"search_doc_{month[0]:04d}{month[1]:02d}"


class PostgresEngine:
    name = "postgres"

    def __init__(self, dsn: str, *, schema: str | None = None, connect_timeout: int = 10) -> None:
        self.dsn = dsn
        self.schema = schema
        self.connect_timeout = connect_timeout
        self._local = threading.local()  # one connection per thread (a psycopg connection is not for sharing)
        self._months: set[tuple[int, int]] = set()  # partitions known to exist (a cache; the catalog decides)
        self._months_lock = threading.Lock()
        self._stats_pending: dict[str, int] = {}  # rows written per table since its last ANALYZE by us
        self._stats_lock = threading.Lock()

    # --- connections --------------------------------------------------------------------------
    def _connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        kwargs = {} if "connect_timeout" in self.dsn else {"connect_timeout": self.connect_timeout}
        conn = psycopg.connect(self.dsn, autocommit=autocommit, **kwargs)
        if self.schema:
            with conn.transaction():
                conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(self.schema)))
        return conn

    def _conn(self) -> tuple[psycopg.Connection, bool]:
        """This thread's connection, and whether it was opened just now."""
        conn = self._own_conn()
        if conn is not None and not conn.closed and not conn.broken:
            return conn, False
        if conn is not None:
            conn.close()
        self._local.conn = None
        conn = self._local.conn = self._connect()
        self._local.pid = os.getpid()
        return conn, True

    def _own_conn(self) -> psycopg.Connection | None:
        """This thread's connection, unless it was inherited through a fork: that socket is the
        parent's, and closing it here would end the parent's session (libpq says goodbye on
        close), so the child parks it, never to be used or finalised, and opens its own."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) != os.getpid():
            _INHERITED.append(conn)
            conn = self._local.conn = None
        return conn

    def _run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """``work`` in one transaction on this thread's connection. A reused connection found
        broken (e.g. closed by a server restart while idle), a deadlock or a serialisation failure
        is retried once, on a new connection if need be: every call here is idempotent."""
        for attempt in (1, 2):
            try:
                conn, fresh = self._conn()
                with conn.transaction():
                    return work(conn)
            except psycopg.OperationalError as exc:
                conn = self._own_conn()
                broken = conn is None or conn.closed or conn.broken
                if broken and conn is not None:
                    conn.close()
                retry = attempt == 1 and ((broken and conn is not None and not fresh)
                                          or isinstance(exc, errors.TransactionRollback))
                if not retry:
                    raise StoreUnavailable(f"search index (PostgreSQL) unavailable: {exc}".strip()) from exc
                log.info("search: retrying after %s: %s", type(exc).__name__, exc)
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Close the calling thread's connection (as SqliteEngine does: each thread owns its own)."""
        conn = self._own_conn()
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- schema and partitions ----------------------------------------------------------------
    def ensure(self) -> None:
        def work(conn):
            # Two processes starting at once would race on CREATE … IF NOT EXISTS (a unique
            # violation in the catalog): one at a time.
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (_LOCK_DDL,))
            conn.execute(_SCHEMA)

        if self.schema:
            def make_schema(conn):
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            try:
                self._run(make_schema)
            except errors.UniqueViolation:  # created concurrently by another process: fine
                pass
        self._run(work)

    def _partitions(self, conn: psycopg.Connection) -> dict[tuple[int, int], str]:
        """The partitions attached to search_doc (detach-pending ones included), by month."""
        rows = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'search_doc'::regclass").fetchall()
        found = {}
        for (name,) in rows:
            m = _PARTITION.match(name)
            if m:
                found[(int(m.group(1)), int(m.group(2)))] = name
        return found

    def _ensure_partitions(self, months: set[tuple[int, int]]) -> None:
        with self._months_lock:
            missing = months - self._months
        if not missing:
            return

        def work(conn):
            existing = self._partitions(conn)
            todo = sorted(missing - existing.keys())
            if todo:
                # Concurrent creators queue here; the second finds the table there (IF NOT EXISTS).
                conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema()))", (_LOCK_DDL,))
                schema = _schema_of_docs(conn)
                for month in todo:
                    lo, hi = _month_bounds(month)
                    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} PARTITION OF {}"
                                         " FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(schema, _partition_name(month)), sql.Identifier(schema, "search_doc"),
                        sql.Literal(lo), sql.Literal(hi)))
            return set(existing) | set(todo)

        try:
            known = self._run(work)
        except errors.DuplicateTable:  # another creator that does not take our lock (an older version)
            known = self._run(lambda conn: set(self._partitions(conn)))
        with self._months_lock:
            self._months |= known & months

    def partitions_drop_before(self, month: date) -> list[str]:
        """Retention: detach and drop every month's partition older than ``month`` (its day is
        ignored), with all their documents; returns the dropped tables' names, oldest first.
        Sessions (and tombstones) stay: they are rows of their own, not a month's.

        DETACH … CONCURRENTLY (PostgreSQL 14+) lets searches and applies run meanwhile: it waits
        for the transactions that may still use the partition instead of locking them all out.
        It cannot run inside a transaction, so this uses an autocommit connection of its own.
        What an interrupted run left — a detach "pending", a table detached but not dropped — the
        next run finishes. Two runs at once take turns (an advisory lock)."""
        first = (month.year, month.month)
        try:
            conn = self._connect(autocommit=True)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"search index (PostgreSQL) unavailable: {exc}") from exc
        dropped: list[str] = []
        try:
            with conn:
                concurrently = conn.info.server_version >= 140000
                schema = _schema_of_docs(conn)
                conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (_LOCK_RETENTION, schema))
                # Every table of ours by its name: attached, detach pending, or left detached.
                pending_col = "coalesce(i.inhdetachpending, false)" if concurrently else "false"
                tables = conn.execute(
                    f"SELECT c.relname, i.inhrelid IS NOT NULL, {pending_col} FROM pg_class c"
                    " LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'search_doc'::regclass"
                    " WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'search_doc'::regclass)"
                    " AND c.relkind = 'r' AND c.relname ~ '^search_doc_[0-9]{6}$' ORDER BY c.relname").fetchall()
                parent = sql.Identifier(schema, "search_doc")
                for name, attached, pending in tables:
                    m = _PARTITION.match(name)
                    key = (int(m.group(1)), int(m.group(2)))
                    if key >= first:
                        continue
                    table = sql.Identifier(schema, name)
                    if pending:
                        conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {} FINALIZE").format(parent, table))
                    elif attached:
                        conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}{}").format(
                            parent, table, sql.SQL(" CONCURRENTLY" if concurrently else "")))
                    conn.execute(sql.SQL("DROP TABLE {}").format(table))
                    with self._months_lock:
                        self._months.discard(key)
                    dropped.append(name)
        except psycopg.OperationalError as exc:
            raise StoreUnavailable(f"search index (PostgreSQL) unavailable: {exc}") from exc
        return dropped

    def partitions(self) -> list[str]:
        """The month partitions there are, oldest first."""
        return [name for _, name in sorted(self._run(self._partitions).items())]

    # --- writes -------------------------------------------------------------------------------
    def apply(self, batch: IndexBatch) -> int:
        # Later entries win, as SQLite's statement-by-statement upserts have it (and one INSERT …
        # ON CONFLICT may not touch a row twice). Sessions sorted, so concurrent batches lock
        # their rows in one order; documents in the batch's order (of first appearance), so ids —
        # the tiebreak of equal times — run as SQLite's do (a rare deadlock between two batches
        # writing the same documents in other orders is retried by _run).
        sessions = sorted({s.session_id: s for s in batch.sessions}.values(), key=lambda s: s.session_id)
        docs = list({(d.session_id, d.kind, int(d.seq)): d for d in batch.docs}.items())
        months = {_month_of(ms(d.created_at)) for _, d in docs}
        rows = []
        for (session_id, kind, seq), doc in docs:
            terms = index_terms(doc.text)
            terms_tsv, lossy = _tsvector(terms.terms)
            chars_tsv, _ = _tsvector(terms.chars)  # chars are matched one at a time: never by position
            rows.append((session_id, kind, seq, doc.role, ms(doc.created_at), doc.text, terms_tsv, chars_tsv,
                         terms.terms if lossy else None))

        def work(conn):
            touched = {s.session_id for s in sessions} | {key[0] for key, _ in docs}
            _session_locks(conn, touched, set(batch.session_deletes))
            dead = _tombstoned(conn, touched)
            live_sessions = [s for s in sessions if s.session_id not in dead]
            if live_sessions:
                conn.execute(
                    "INSERT INTO search_session (session_id, customer_id, channel, status, started_ms, expires_ms)"
                    " SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[])"
                    " ON CONFLICT (session_id) DO UPDATE SET customer_id = excluded.customer_id,"
                    " channel = excluded.channel, status = excluded.status, started_ms = excluded.started_ms,"
                    " expires_ms = excluded.expires_ms",
                    list(map(list, zip(*[(s.session_id, s.customer_id, s.channel, s.status, ms(s.started_at),
                                          ms(s.expires_at) if s.expires_at else None) for s in live_sessions]))))
            live = [r for r in rows if r[0] not in dead]
            if live:
                cols = list(map(list, zip(*live)))
                # A document whose time moved would land in another row (the key holds the
                # time): its old copy goes first, and its id goes on, as with SQLite's upsert on
                # (session_id, kind, seq) — ids are the tiebreak of equal times and ranks.
                moved = {(r[0], r[1], r[2]): r[3] for r in conn.execute(
                    "DELETE FROM search_doc d USING unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[])"
                    " AS n(session_id, kind, seq, created_ms) WHERE d.session_id = n.session_id AND d.kind = n.kind"
                    " AND d.seq = n.seq AND d.created_ms <> n.created_ms RETURNING d.session_id, d.kind, d.seq, d.id",
                    cols[:3] + [cols[4]])}
                cols.append([moved.get((r[0], r[1], r[2])) for r in live])
                conn.execute(
                    "INSERT INTO search_doc (id, session_id, kind, seq, role, created_ms, text, terms_tsv, chars_tsv,"
                    " terms_text) SELECT coalesce(n.id, nextval('search_doc_id_seq')), n.session_id, n.kind, n.seq,"
                    " n.role, n.created_ms, n.text, n.terms::tsvector, n.chars::tsvector, n.terms_text"
                    " FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::text[], %s::bigint[], %s::text[],"
                    " %s::text[], %s::text[], %s::text[], %s::bigint[])"
                    " AS n(session_id, kind, seq, role, created_ms, text, terms, chars, terms_text, id)"
                    " ON CONFLICT (session_id, kind, seq, created_ms) DO UPDATE SET role = excluded.role,"
                    " text = excluded.text, terms_tsv = excluded.terms_tsv, chars_tsv = excluded.chars_tsv,"
                    " terms_text = excluded.terms_text", cols)
            if batch.doc_deletes:
                conn.execute(
                    "DELETE FROM search_doc d USING unnest(%s::text[], %s::text[], %s::bigint[])"
                    " AS n(session_id, kind, seq) WHERE d.session_id = n.session_id AND d.kind = n.kind AND d.seq = n.seq",
                    list(map(list, zip(*[(s, k, int(q)) for s, k, q in batch.doc_deletes]))))
            for session_id in batch.session_deletes:
                _session_delete(conn, session_id)
            if batch.newest_change is not None:
                conn.execute(
                    "INSERT INTO search_state (name, value) VALUES ('newest_change_ms', %s) ON CONFLICT (name)"
                    " DO UPDATE SET value = greatest(search_state.value::bigint, excluded.value::bigint)::text",
                    (str(ms(batch.newest_change)),))
            # Every document of the batch counts, a repeated one too (SQLite's count).
            return sum(1 for d in batch.docs if d.session_id not in dead)

        self._ensure_partitions(months)
        try:
            written = self._run(work)
        except errors.CheckViolation as exc:
            # "no partition of relation … found for row": a month dropped by retention (another
            # process) after we cached it as there. Forget the cache and create it again.
            if "partition" not in str(exc):
                raise
            with self._months_lock:
                self._months -= months
            self._ensure_partitions(months)
            written = self._run(work)
        self._stats_count({**{_partition_name(m): len(rows) for m in months}, "search_session": len(sessions)})
        return written

    def _stats_count(self, written: dict[str, int]) -> None:
        """Count the rows this engine wrote per table (summed over batches: the change feed's
        batches are small, a first load is many of them) and refresh the statistics of a table
        once they reach STATS_MIN_ROWS and half its analysed size (``_refresh_stats``)."""
        with self._stats_lock:
            due = {}
            for name, rows in written.items():
                self._stats_pending[name] = self._stats_pending.get(name, 0) + rows
                # Sessions come ten documents apiece: their table reaches a misleading size sooner.
                if self._stats_pending[name] >= (STATS_MIN_ROWS // 10 if name == "search_session" else STATS_MIN_ROWS):
                    due[name] = self._stats_pending[name]
        if due:
            analysed = self._refresh_stats(due)
            with self._stats_lock:
                for name in analysed:
                    self._stats_pending[name] = 0

    def _refresh_stats(self, pending: dict[str, int]) -> set[str]:
        """ANALYZE the tables these rows changed a lot (a first load, a reindex, a month's
        partition filling up): until autovacuum's next round, the planner takes a fresh table
        for empty — a nested loop over "two" sessions probing every partition per session:
        28 ms for 20k turns, seconds at a million, instead of milliseconds. Returns the tables
        analysed (the rest keep counting)."""
        def work(conn):
            schema = _schema_of_docs(conn)
            sizes = dict(conn.execute(
                "SELECT c.relname, c.reltuples FROM pg_class c WHERE c.relname = ANY(%s::text[])"
                " AND c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'search_doc'::regclass)",
                (sorted(pending),)).fetchall())
            done = set()
            for name, written in sorted(pending.items()):
                tuples = sizes.get(name)
                # reltuples -1: never analysed (PostgreSQL 14+); 0 on older ones.
                if tuples is not None and (tuples <= 0 or written > tuples * 0.5):
                    # SKIP_LOCKED: someone (autovacuum, another indexer) is at it already.
                    conn.execute(sql.SQL("ANALYZE (SKIP_LOCKED) {}").format(sql.Identifier(schema, name)))
                    done.add(name)
            return done

        try:
            return self._run(work)
        except (psycopg.Error, StoreUnavailable) as exc:  # statistics are an optimisation: never fail the batch
            log.warning("search: ANALYZE after a big batch failed: %s", exc)
            return set()

    def session_delete(self, session_id: str) -> int:
        def work(conn):
            _session_locks(conn, {session_id}, {session_id})
            return _session_delete(conn, session_id)

        return self._run(work)

    def progress_set(self, name: str, value: str | None) -> None:
        def work(conn):
            if value is None:
                conn.execute("DELETE FROM search_state WHERE name = %s", (f"progress:{name}",))
            else:
                conn.execute("INSERT INTO search_state (name, value) VALUES (%s, %s) ON CONFLICT (name)"
                             " DO UPDATE SET value = excluded.value", (f"progress:{name}", value))

        self._run(work)

    # --- reads --------------------------------------------------------------------------------
    def sessions_known(self, session_ids: Iterable[str]) -> set[str]:
        ids = list(set(session_ids))
        if not ids:
            return set()
        return self._run(lambda conn: {r[0] for r in conn.execute(
            "SELECT session_id FROM search_session WHERE session_id = ANY(%s::text[])", (ids,))})

    def progress_get(self, name: str) -> str | None:
        row = self._run(lambda conn: conn.execute(
            "SELECT value FROM search_state WHERE name = %s", (f"progress:{name}",)).fetchone())
        return row[0] if row else None

    def state(self) -> IndexState:
        def work(conn):
            row = conn.execute("SELECT value FROM search_state WHERE name = 'newest_change_ms'").fetchone()
            sessions = conn.execute("SELECT count(*) FROM search_session WHERE deleted_ms IS NULL").fetchone()[0]
            return row, sessions

        row, sessions = self._run(work)
        return IndexState(newest_change_at=from_ms(int(row[0])) if row else None, sessions=sessions)

    def search(self, query: str, *, filters: SearchFilter | None = None, order: str = NEWEST,
               limit: int = 50, cursor: str | None = None, now: datetime | None = None) -> HitPage:
        check_order(order)
        clauses = query_clauses(query)
        if not clauses:
            return HitPage(hits=[], cursor=None)
        filters = filters or SearchFilter()
        last = cursor_decode(cursor, order) if cursor else None
        terms = [c for c in clauses if c.field == "terms"]
        chars = [c for c in clauses if c.field == "chars"]
        phrases = [c for c in terms if len(c.phrase) > 1]
        args: dict = {"now": ms(now or utcnow()), "limit": limit + 1}
        where = ["s.deleted_ms IS NULL", "(s.expires_ms IS NULL OR s.expires_ms > %(now)s)"]
        rank = []
        if terms:
            # Every term present (what the GIN index answers), then each phrase: by position, or,
            # for a document whose positions overflowed, on its terms (module docstring).
            args["t_all"] = _all_terms(terms)
            args["t_gin"] = _gin_terms(terms) if phrases else args["t_all"]
            where.append("d.terms_tsv @@ %(t_gin)s::tsquery")
            if phrases:
                args["t_phrase"] = " & ".join(f"({_phrase(c)})" for c in terms)
                checks = []
                for i, clause in enumerate(phrases):
                    args[f"p{i}"] = f" {' '.join(clause.phrase)} "
                    checks.append(f"strpos(' ' || d.terms_text || ' ', %(p{i})s) > 0")
                where.append(f"(CASE WHEN d.terms_text IS NULL THEN d.terms_tsv @@ %(t_phrase)s::tsquery"
                             f" ELSE {' AND '.join(checks)} END)")
                rank.append(f"(CASE WHEN d.terms_text IS NULL"
                            f" THEN ts_rank_cd(d.terms_tsv, %(t_phrase)s::tsquery, {RANK_NORMALIZATION})"
                            f" ELSE ts_rank_cd(d.terms_tsv, %(t_all)s::tsquery, {RANK_NORMALIZATION}) END)::float8")
            else:
                rank.append(f"ts_rank_cd(d.terms_tsv, %(t_all)s::tsquery, {RANK_NORMALIZATION})::float8")
        if chars:
            args["c_all"] = _all_terms(chars)
            where.append("d.chars_tsv @@ %(c_all)s::tsquery")
            rank.append(f"ts_rank_cd(d.chars_tsv, %(c_all)s::tsquery, {RANK_NORMALIZATION})::float8")
        lo, hi = day_bounds_ms(filters)
        for name, cond, value in (("lo", "s.started_ms >= %(lo)s", lo), ("hi", "s.started_ms < %(hi)s", hi),
                                  ("channel", "s.channel = %(channel)s", filters.channel),
                                  ("status", "s.status = %(status)s", filters.status),
                                  ("customer", "s.customer_id = %(customer)s", filters.customer_id)):
            if value is not None:
                where.append(cond)
                args[name] = value
        if order == NEWEST:
            key = "d.created_ms"
            if last:
                where.append("(d.created_ms, d.id) < (%(last_key)s::bigint, %(last_id)s::bigint)")
        else:
            key = " + ".join(rank)
            if last:
                # The same float8 expression as the one ordered by, against the cursor's float8.
                where.append(f"(({key}) < %(last_key)s::float8 OR (({key}) = %(last_key)s::float8"
                             f" AND d.id < %(last_id)s::bigint))")
        if last:
            args["last_key"] = int(last[0]) if order == NEWEST else float(last[0])
            args["last_id"] = last[1]
        if order == NEWEST:
            where.append("d.created_ms >= %(m_lo)s AND d.created_ms < %(m_hi)s")
        query_sql = (f"SELECT d.id, d.session_id, d.seq, d.role, d.text, d.created_ms, s.customer_id, s.channel,"
                     f" d.kind, {key} AS sort_key FROM search_doc d JOIN search_session s ON s.session_id = d.session_id"
                     f" WHERE {' AND '.join(where)} ORDER BY sort_key DESC, d.id DESC LIMIT %(limit)s")

        def newest(conn: psycopg.Connection) -> list:
            # Month by month, newest first, until the page is full: a common term fills it from
            # the newest partition alone instead of sorting every month's matches; every row of a
            # month is newer than every row of the months before, so the pages join in order.
            found: list = []
            for month in sorted(self._partitions(conn), reverse=True):
                lo, hi = _month_bounds(month)
                if last and lo > args["last_key"]:
                    continue  # wholly newer than the cursor
                found += conn.execute(query_sql, {**args, "m_lo": lo, "m_hi": hi,
                                                  "limit": limit + 1 - len(found)}).fetchall()
                if len(found) > limit:
                    break
            return found

        if order == NEWEST:
            rows = self._run(newest)
        else:
            rows = self._run(lambda conn: conn.execute(query_sql, args).fetchall())
        hits = [Hit(session_id=r[1], seq=r[2], role=r[3], text=r[4], created_at=from_ms(r[5]), customer_id=r[6],
                    channel=r[7], kind=r[8]) for r in rows[:limit]]
        tail = rows[limit - 1] if len(rows) > limit else None
        return HitPage(hits=hits, cursor=cursor_encode(order, tail[9], tail[0]) if tail else None)


def _schema_of_docs(conn: psycopg.Connection) -> str:
    """The schema search_doc resolved to (partitions go beside it, whatever the search_path)."""
    return conn.execute("SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE c.oid = 'search_doc'::regclass").fetchone()[0]


def _session_locks(conn: psycopg.Connection, session_ids: set[str], exclusive: set[str]) -> None:
    """Advisory locks on these sessions until the transaction ends: shared for writing their
    documents, exclusive for deleting them; taken in one order (by hash) so no two batches
    deadlock on them. A delete thus never interleaves with an apply of the same session (whose
    documents would otherwise outlive its tombstone)."""
    ids = sorted(session_ids | exclusive)
    if not ids:
        return
    conn.execute(
        "SELECT CASE WHEN l.x THEN pg_advisory_xact_lock(%s, l.h) ELSE pg_advisory_xact_lock_shared(%s, l.h) END"
        " FROM (SELECT hashtext(u.id) AS h, bool_or(u.x) AS x FROM unnest(%s::text[], %s::bool[]) AS u(id, x)"
        " GROUP BY 1 ORDER BY 1) l",
        (_LOCK_SESSION, _LOCK_SESSION, ids, [i in exclusive for i in ids]))


def _tombstoned(conn: psycopg.Connection, session_ids: set[str]) -> set[str]:
    if not session_ids:
        return set()
    return {r[0] for r in conn.execute(
        "SELECT session_id FROM search_session WHERE deleted_ms IS NOT NULL AND session_id = ANY(%s::text[])",
        (list(session_ids),))}


def _session_delete(conn: psycopg.Connection, session_id: str) -> int:
    removed = conn.execute("DELETE FROM search_doc WHERE session_id = %s", (session_id,)).rowcount
    # The tombstone: a turn of this session still on its way through the change feed stays out.
    conn.execute("INSERT INTO search_session (session_id, customer_id, channel, status, started_ms, deleted_ms)"
                 " VALUES (%s, '', '', '', 0, %s)"
                 " ON CONFLICT (session_id) DO UPDATE SET deleted_ms = excluded.deleted_ms",
                 (session_id, ms(utcnow())))
    return removed
