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
