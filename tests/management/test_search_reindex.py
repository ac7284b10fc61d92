"""manage.py search_reindex (rebuild by the day index, resumable, with progress) and the demo
seed, whose sessions are searchable the moment it finishes."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from sessions_app.clock import utcnow
from sessions_app.search import search_engine
from sessions_app.services.search_index import REINDEX_JOB, ReindexProgress
from tests.builders import make_session


def _run(name: str, *args) -> str:
    out = StringIO()
    call_command(name, *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def fresh_index(tmp_path, settings):
    settings.SEARCH_SQLITE_PATH = str(tmp_path / "index.sqlite3")
    return search_engine


def test_a_rebuild_indexes_every_day_given_and_says_so(ddb, fresh_index, capsys):
    today = utcnow().date()
    ids = [make_session(customer_id=f"c{n}", started_at=utcnow() - timedelta(days=n), turns=3).session_id
           for n in range(4)]
    out = _run("search_reindex", "--from", str(today - timedelta(days=2)), "--to", str(today))
    assert "indexed 3 sessions, 9 documents" in out
    assert {h.session_id for h in fresh_index().search("turn", limit=50).hits} == set(ids[:3])
    status = _run("search_reindex", "--status")
    assert "engine sqlite: 3 sessions indexed" in status and "interrupted" not in status


def test_a_saved_position_is_resumed_and_restart_ignores_it(ddb, fresh_index):
    today = utcnow().date()
    ids = [make_session(customer_id=f"c{n}", started_at=utcnow() - timedelta(days=n), turns=1).session_id
           for n in range(2)]
    # As an interrupted run leaves it: today done, yesterday not begun.
    saved = ReindexProgress(day_from=today - timedelta(days=1), day_to=today, day=today - timedelta(days=1),
                            shard=0, after=None, sessions=1, docs=1)
    fresh_index().progress_set(REINDEX_JOB, saved.dumps())
    assert "interrupted rebuild" in _run("search_reindex", "--status")
    out = _run("search_reindex", "--from", str(today - timedelta(days=1)), "--to", str(today))
    assert "resumed a rebuild" in out and "indexed 2 sessions" in out  # 1 before + 1 now
    assert {h.session_id for h in fresh_index().search("turn").hits} == {ids[1]}  # only what it resumed
    out = _run("search_reindex", "--from", str(today - timedelta(days=1)), "--to", str(today), "--restart")
    assert "indexed 2 sessions, 2 documents" in out and "resumed" not in out
    assert {h.session_id for h in fresh_index().search("turn").hits} == set(ids)


def test_bad_days_are_refused(ddb, fresh_index):
    with pytest.raises(CommandError, match="not a day"):
        _run("search_reindex", "--from", "yesterday")
    with pytest.raises(CommandError, match="must not be after"):
        _run("search_reindex", "--from", "2026-12-02", "--to", "2026-12-01")


def test_the_demo_seed_is_searchable_at_once(ddb, fresh_index):
    out = _run("seed_demo", "--sessions", "12", "--threads", "2")
    assert "search index: 12 sessions" in out
    assert fresh_index().state().sessions == 12
    assert fresh_index().search("の", limit=5).hits  # Japanese demo text, found by one character
