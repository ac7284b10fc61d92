"""Every engine runs the same tests: the ``engine`` fixture is parametrised over them.

PostgreSQL: one server for the test session (tests/fixtures/postgres.py), a fresh schema per test
(the engine's ``schema``), dropped after it — a clean slate without a server per test."""

from __future__ import annotations

import uuid

import pytest

ENGINES = ["sqlite", "postgres"]


@pytest.fixture
def postgres_schema(postgres_dsn):
    """A new, empty schema name; the schema (made by the engine's ensure) is dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path):
    if request.param == "sqlite":
        from sessions_app.search.sqlite_engine import SqliteEngine

        built = SqliteEngine(tmp_path / "search.sqlite3")
    elif request.param == "postgres":
        from sessions_app.search.postgres_engine import PostgresEngine

        built = PostgresEngine(request.getfixturevalue("postgres_dsn"),
                               schema=request.getfixturevalue("postgres_schema"))
    built.ensure()
    yield built
    built.close()


class SearchSettings:
    """Points the settings (``search_engine()``) at an empty index of one engine kind; ``fresh()``
    at another empty one (an index that missed what came before)."""

    def __init__(self, kind: str, settings, tmp_path, postgres_dsn: str | None) -> None:
        self.kind, self.settings, self.tmp_path, self.postgres_dsn = kind, settings, tmp_path, postgres_dsn
        self.databases: list[str] = []

    def fresh(self) -> None:
        from sessions_app.search import search_engines_reset

        search_engines_reset()
        name = f"t_{uuid.uuid4().hex[:12]}"
        self.settings.SEARCH_ENGINE = self.kind
        if self.kind == "sqlite":
            self.settings.SEARCH_SQLITE_PATH = str(self.tmp_path / f"{name}.sqlite3")
            return
        import psycopg
        import psycopg.conninfo
        from psycopg import sql

        with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.databases.append(name)
        self.settings.SEARCH_DATABASE_URL = psycopg.conninfo.make_conninfo(self.postgres_dsn, dbname=name)

    def close(self) -> None:
        from sessions_app.search import search_engines_reset

        search_engines_reset()
        if self.databases:
            import psycopg
            from psycopg import sql

            with psycopg.connect(self.postgres_dsn, autocommit=True) as conn:
                for name in self.databases:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(params=ENGINES)
def search_settings(request, settings, tmp_path):
    """The product's own ``search_engine()`` on each engine in turn (indexer, rebuild, retention)."""
    dsn = request.getfixturevalue("postgres_dsn") if request.param == "postgres" else None
    chosen = SearchSettings(request.param, settings, tmp_path, dsn)
    chosen.fresh()
    yield chosen
    chosen.close()
