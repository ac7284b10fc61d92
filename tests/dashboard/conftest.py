"""Console test fixtures: the DAX node the console's provenance tests read through. Staff users
and the ``console`` fixture come from tests/fixtures/staff.py (shared with tests/admin)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def dax_node(infra):
    """The local DAX node in front of DynamoDB Local (a real DAX client talks to it)."""
    from devtools import procs
    from devtools.dax import start_dax_node

    port, stats_port = procs.free_port(), procs.free_port()
    proc = start_dax_node(port, dynamodb_endpoint=infra["dynamodb_endpoint"], stats_port=stats_port,
                          log=infra["logs"] / "dax-node-dashboard.log")
    yield {"endpoint": f"127.0.0.1:{port}", "stats_url": f"http://127.0.0.1:{stats_port}/stats"}
    procs.stop(proc)


@pytest.fixture
def through_dax(console, dax_node, settings):
    """Reads (and writes) of this test go through the DAX node."""
    from sessions_app import dynamo

    settings.DAX_ENDPOINTS = [dax_node["endpoint"]]
    settings.DAX_STATS_URL = dax_node["stats_url"]
    settings.DAX_WRITE_THROUGH = True
    dynamo.reset_connections()
    yield dax_node
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()


@pytest.fixture
def fresh_count(monkeypatch):
    """The title's "needs a human" count is memoised per process for 5 s: recount on every page."""
    from sessions_app.selectors import overview as overview_selectors

    monkeypatch.setattr(overview_selectors, "HANDOFF_COUNT_CACHE_SECONDS", 0.0)
