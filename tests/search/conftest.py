"""Every engine runs the same tests: the ``engine`` fixture is parametrised over them."""

from __future__ import annotations

import pytest

ENGINES = ["sqlite"]


@pytest.fixture(params=ENGINES)
def engine(request, tmp_path):
    if request.param == "sqlite":
        from sessions_app.search.sqlite_engine import SqliteEngine

        built = SqliteEngine(tmp_path / "search.sqlite3")
    built.ensure()
    yield built
    built.close()
