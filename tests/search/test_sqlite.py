"""What is the embedded engine's alone: its file's failures are StoreUnavailable (the API's 503,
the change feed's retry), never a raw sqlite3 error."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone

import pytest

from sessions_app.exceptions import StoreUnavailable
from sessions_app.search.engine import IndexBatch, SessionDoc, TurnDoc
from sessions_app.search.sqlite_engine import SqliteEngine

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def test_a_path_that_cannot_be_a_database_is_unavailable(tmp_path):
    (tmp_path / "search.sqlite3").mkdir()  # a directory where the file should be
    with pytest.raises(StoreUnavailable, match="search index"):
        SqliteEngine(tmp_path / "search.sqlite3").ensure()


def test_a_writer_held_off_past_the_timeout_is_unavailable_and_the_batch_can_come_again(tmp_path):
    path = tmp_path / "search.sqlite3"
    engine = SqliteEngine(path, timeout=0.2)
    engine.ensure()
    batch = IndexBatch(sessions=[SessionDoc("s", "c", "web", "active", T0)], docs=[TurnDoc("s", 1, "user", "在庫", T0)])
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            engine.apply(batch)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert engine.apply(batch) == 1
    assert [h.session_id for h in engine.search("在庫").hits] == ["s"]
    engine.close()
