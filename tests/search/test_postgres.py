"""What only the PostgreSQL engine has: month partitions made on demand and dropped whole by
retention, concurrent writers, connections that die under it, an unreachable server. And
tsvector's limits (positions capped at 16383, 256 positions per lexeme, 2047-byte lexemes),
checked on both engines: the answers must be SQLite's."""

from __future__ import annotations

import threading
import time
from datetime import date, datetime, timedelta, timezone

import psycopg
import pytest
from psycopg import sql

from devtools import procs
from sessions_app.exceptions import StoreUnavailable
from sessions_app.search.engine import IndexBatch, SessionDoc, TurnDoc
from sessions_app.search.postgres_engine import _LOCK_SESSION, PostgresEngine

NOV, DEC = datetime(2026, 11, 20, tzinfo=timezone.utc), datetime(2026, 12, 3, tzinfo=timezone.utc)


def _session(session_id, started_at=NOV):
    return SessionDoc(session_id=session_id, customer_id="c", channel="web", status="active", started_at=started_at)


def _turn(session_id, seq, text, at):
    return TurnDoc(session_id=session_id, seq=seq, role="user", text=text, created_at=at)


def _ids(page):
    return sorted((h.session_id, h.seq) for h in page.hits)


@pytest.fixture
def pg(postgres_dsn, postgres_schema):
    engine = PostgresEngine(postgres_dsn, schema=postgres_schema)
    engine.ensure()
    yield engine
    engine.close()


def _rows_per_partition(dsn, schema):
    with psycopg.connect(dsn) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        return dict(conn.execute(
            "SELECT tableoid::regclass::text, count(*) FROM search_doc GROUP BY 1 ORDER BY 1").fetchall())


def test_partitions_are_made_per_month_on_demand(pg, postgres_dsn, postgres_schema):
    assert pg.partitions() == []
    pg.apply(IndexBatch(sessions=[_session("a"), _session("b")],
                        docs=[_turn("a", 1, "在庫 11月", NOV), _turn("a", 2, "在庫 12月", DEC), _turn("b", 1, "在庫", DEC)]))
    assert pg.partitions() == ["search_doc_202611", "search_doc_202612"]
    assert _rows_per_partition(postgres_dsn, postgres_schema) == {"search_doc_202611": 1, "search_doc_202612": 2}
    # Month boundaries are UTC: the last millisecond of November is November's.
    last_of_nov = datetime(2026, 12, 1, tzinfo=timezone.utc) - timedelta(milliseconds=1)
    pg.apply(IndexBatch(docs=[_turn("b", 2, "在庫", last_of_nov)]))
    assert _rows_per_partition(postgres_dsn, postgres_schema)["search_doc_202611"] == 2
    pg.ensure()  # idempotent, partitions and all
    assert len(pg.search("在庫").hits) == 4


def test_a_document_whose_time_moves_month_leaves_no_copy_behind(pg, postgres_dsn, postgres_schema):
    pg.apply(IndexBatch(sessions=[_session("a")], docs=[_turn("a", 1, "表紙", NOV)]))
    pg.apply(IndexBatch(docs=[_turn("a", 1, "表示", DEC)]))
    assert _rows_per_partition(postgres_dsn, postgres_schema) == {"search_doc_202612": 1}
    assert pg.search("表紙").hits == [] and _ids(pg.search("表示")) == [("a", 1)]


def test_retention_drops_the_old_months_and_nothing_else(pg, postgres_dsn, postgres_schema):
    oct_ = datetime(2026, 10, 31, 23, 59, tzinfo=timezone.utc)
    pg.apply(IndexBatch(sessions=[_session("old"), _session("new")], docs=[
        _turn("old", 1, "返品 10月", oct_), _turn("old", 2, "返品 11月", NOV), _turn("new", 1, "返品 12月", DEC)]))
    assert pg.partitions_drop_before(date(2026, 10, 15)) == []  # October is not *older* than October
    assert pg.partitions_drop_before(date(2026, 12, 15)) == ["search_doc_202610", "search_doc_202611"]
    assert pg.partitions() == ["search_doc_202612"]
    assert _ids(pg.search("返品")) == [("new", 1)]
    assert pg.sessions_known(["old", "new"]) == {"old", "new"}  # sessions are not documents: they stay
    assert pg.partitions_drop_before(date(2026, 12, 15)) == []
    # A late document of a dropped month makes its partition again.
    pg.apply(IndexBatch(docs=[_turn("old", 3, "返品 また", NOV)]))
    assert pg.partitions() == ["search_doc_202611", "search_doc_202612"]
    assert _ids(pg.search("返品")) == [("new", 1), ("old", 3)]


def test_retention_finishes_what_an_interrupted_run_left(pg, postgres_dsn, postgres_schema):
    pg.apply(IndexBatch(sessions=[_session("a")], docs=[_turn("a", 1, "在庫", NOV), _turn("a", 2, "在庫", DEC)]))
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:  # detached, then the run died
        conn.execute(sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
            sql.Identifier(postgres_schema, "search_doc"), sql.Identifier(postgres_schema, "search_doc_202611")))
    assert pg.partitions() == ["search_doc_202612"]
    assert pg.partitions_drop_before(date(2026, 12, 1)) == ["search_doc_202611"]
    with psycopg.connect(postgres_dsn) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"{postgres_schema}.search_doc_202611",)).fetchone()[0] is None


def test_a_month_dropped_by_another_process_is_made_again(pg, postgres_dsn, postgres_schema):
    pg.apply(IndexBatch(sessions=[_session("a")], docs=[_turn("a", 1, "在庫", NOV), _turn("a", 2, "在庫", DEC)]))
    other = PostgresEngine(postgres_dsn, schema=postgres_schema)
    try:
        assert other.partitions_drop_before(date(2026, 12, 1)) == ["search_doc_202611"]
    finally:
        other.close()
    # pg still believes November is there; the insert fails on the missing partition, pg makes it.
    assert pg.apply(IndexBatch(docs=[_turn("a", 3, "在庫", NOV)])) == 1
    assert _ids(pg.search("在庫")) == [("a", 2), ("a", 3)]


def test_concurrent_writers_to_a_new_month_do_not_fail(postgres_dsn, postgres_schema):
    PostgresEngine(postgres_dsn, schema=postgres_schema).ensure()
    # Engines of their own (as separate processes have) and threads sharing one engine, all
    # starting together on months none has seen.
    shared = PostgresEngine(postgres_dsn, schema=postgres_schema)
    engines = [PostgresEngine(postgres_dsn, schema=postgres_schema) for _ in range(3)] + [shared] * 3
    rounds = 5
    barrier = threading.Barrier(len(engines))
    errors = []

    def writer(n, engine):
        try:
            for r in range(rounds):
                at = datetime(2027, 1 + r, 15, tzinfo=timezone.utc)
                barrier.wait(timeout=30)
                engine.apply(IndexBatch(
                    sessions=[_session(f"s{n}", at), _session("common", at)],
                    docs=[_turn(f"s{n}", r, f"在庫 {r}", at), _turn("common", n * 100 + r, "在庫", at)]))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()
        finally:
            engine.close()

    threads = [threading.Thread(target=writer, args=(n, e)) for n, e in enumerate(engines)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    check = PostgresEngine(postgres_dsn, schema=postgres_schema)
    try:
        assert check.partitions() == [f"search_doc_2027{m:02d}" for m in range(1, rounds + 1)]
        assert len(check.search("在庫", limit=100).hits) == 2 * len(engines) * rounds
    finally:
        check.close()


def test_a_connection_killed_server_side_is_replaced(pg, postgres_dsn):
    pg.apply(IndexBatch(sessions=[_session("a")], docs=[_turn("a", 1, "在庫", NOV)]))
    for call in (lambda: pg.search("在庫"), lambda: pg.apply(IndexBatch(docs=[_turn("a", 2, "在庫", NOV)])), pg.state):
        pid = pg._conn()[0].info.backend_pid
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
            # The backend is gone once it no longer shows (terminate only signals it).
            for _ in range(100):
                if not admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
                    break
                time.sleep(0.02)
        call()  # on a new connection: the dead one was found broken and replaced
        assert pg._conn()[0].info.backend_pid != pid
    assert _ids(pg.search("在庫")) == [("a", 1), ("a", 2)]


def test_an_unreachable_server_is_store_unavailable():
    engine = PostgresEngine(procs.postgres_dsn(procs.free_port()))  # nothing listens there
    with pytest.raises(StoreUnavailable):
        engine.state()
    with pytest.raises(StoreUnavailable):
        engine.partitions_drop_before(date(2026, 1, 1))


def test_a_delete_waits_for_an_apply_of_the_same_session(pg, postgres_dsn, postgres_schema):
    """The tombstone must win over a concurrent apply: SQLite has one writer at a time, here an
    apply holds its sessions' advisory locks (shared) and a delete waits for them (exclusive)."""
    pg.apply(IndexBatch(sessions=[_session("a")], docs=[_turn("a", 1, "在庫", NOV)]))
    done = threading.Event()
    with psycopg.connect(postgres_dsn) as holder:  # as an apply of "a" in progress would
        holder.execute("SELECT pg_advisory_xact_lock_shared(%s, hashtext('a'))", (_LOCK_SESSION,))

        def delete():
            pg.session_delete("a")
            pg.close()
            done.set()

        thread = threading.Thread(target=delete)
        thread.start()
        assert not done.wait(0.5)
        holder.rollback()
        assert done.wait(10)
        thread.join()
    assert pg.search("在庫").hits == []


# --- tsvector's limits, on both engines: the same answers --------------------------------------
def test_a_phrase_past_16383_terms_is_found_and_none_is_made_up(engine):
    # 16 381 numbers, then 限定 at position 16 382, x, 定版 at 16 384 — which PostgreSQL would clamp
    # to 16 383, right after 限定: a phrase 限定版 that is not in the text.
    head = " ".join(str(i) for i in range(16_381))
    tail = " ".join(str(i) for i in range(16_381, 20_000))
    engine.apply(IndexBatch(sessions=[_session("long")], docs=[
        _turn("long", 1, f"{head} 限定 x 定版 {tail} ワンピース", NOV),
        _turn("long", 2, "限定版のワンピース", NOV)]))
    assert _ids(engine.search("限定版")) == [("long", 2)]
    # Past the cap, where every position is 16 383: found all the same.
    assert _ids(engine.search("ワンピース")) == [("long", 1), ("long", 2)]
    assert _ids(engine.search("19999 ワンピース")) == [("long", 1)]
    assert _ids(engine.search("限定 定版")) == [("long", 1), ("long", 2)]


def test_a_term_more_than_256_times_keeps_every_phrase(engine):
    # です 300 times, then the one place where です is followed by か.
    engine.apply(IndexBatch(sessions=[_session("rep")], docs=[
        _turn("rep", 1, "です、" * 300 + "ですか", NOV), _turn("rep", 2, "です", NOV)]))
    assert _ids(engine.search("ですか")) == [("rep", 1)]
    assert _ids(engine.search("です")) == [("rep", 1), ("rep", 2)]


def test_a_term_longer_than_a_lexeme_is_found_by_itself_only(engine):
    word = "a" * 2500  # 2500 bytes: over PostgreSQL's 2047
    engine.apply(IndexBatch(sessions=[_session("w")], docs=[
        _turn("w", 1, f"see {word}", NOV), _turn("w", 2, "a" * 2400, NOV), _turn("w", 3, "a" * 1900, NOV)]))
    assert _ids(engine.search(word)) == [("w", 1)]
    assert _ids(engine.search("a" * 2400)) == [("w", 2)]
    assert _ids(engine.search("a" * 1900)) == [("w", 3)]


def test_a_text_with_more_distinct_terms_than_a_tsvector_holds_does_not_fail(pg):
    # 150 000 distinct 7-digit numbers: 1.05 MB of lexemes, over tsvector's 1 MB. The first ones
    # are indexed, the rest not (SQLite has them all: a limit of this engine, far past the 16 KB
    # turn limit).
    text = " ".join(str(n) for n in range(1_000_000, 1_150_000))
    assert pg.apply(IndexBatch(sessions=[_session("big")], docs=[_turn("big", 1, text, NOV)])) == 1
    assert _ids(pg.search("1000000")) == [("big", 1)]
    assert _ids(pg.search("1149999")) == []
