"""Transcript search (issue 15): the text analysis both engines share (``text``), the engines
behind one interface (``engine``; ``sqlite_engine``, ``postgres_engine``) and the shapes results
take (``results``). This package owns the search index's connections, as ``dynamo`` owns
DynamoDB's and ``realtime`` Redis's; the change-feed indexer is ``services.search_index``.
docs/architecture.md §Search."""

from __future__ import annotations

import threading

from django.conf import settings

from .engine import SearchEngine

_engines: dict[tuple[str, str], SearchEngine] = {}
_lock = threading.Lock()


def search_engine() -> SearchEngine:
    """The engine the settings name, its schema ensured once per process (settings are read on
    every call, so a test that points SEARCH_SQLITE_PATH elsewhere gets an engine there)."""
    kind = settings.SEARCH_ENGINE
    where = settings.SEARCH_DATABASE_URL if kind == "postgres" else str(settings.SEARCH_SQLITE_PATH)
    key = (kind, where)
    engine = _engines.get(key)
    if engine is None:
        with _lock:
            engine = _engines.get(key)
            if engine is None:
                engine = _build(kind, where)
                engine.ensure()
                _engines[key] = engine
    return engine


def _build(kind: str, where: str) -> SearchEngine:
    if kind == "postgres":
        from .postgres_engine import PostgresEngine

        return PostgresEngine(where)
    from pathlib import Path

    from .sqlite_engine import SqliteEngine

    Path(where).parent.mkdir(parents=True, exist_ok=True)
    return SqliteEngine(where)


def search_engines_reset() -> None:
    """Forget every engine built so far (tests that change the settings; after a fork)."""
    with _lock:
        for engine in _engines.values():
            engine.close()
        _engines.clear()
