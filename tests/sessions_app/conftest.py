"""The services and selectors run twice: against DynamoDB Local directly, and through the local
DAX node in front of it (with its background refresh after transactions switched on, as real
DAX does it), so every read-your-writes claim is checked against both caches."""

from __future__ import annotations

import pytest

from devtools import procs
from devtools.dax import start_dax_node

# How late the node refreshes its item cache after a TransactWriteItems (AWS: "in the background").
TX_REFRESH_DELAY_MS = 150


@pytest.fixture(scope="session")
def dax_node(infra):
    port, stats_port = procs.free_port(), procs.free_port()
    proc = start_dax_node(
        port, dynamodb_endpoint=infra["dynamodb_endpoint"], stats_port=stats_port,
        extra_args=["--tx-refresh-delay-ms", str(TX_REFRESH_DELAY_MS)], log=infra["logs"] / "dax-node.log",
    )
    yield {"endpoint": f"127.0.0.1:{port}", "stats_url": f"http://127.0.0.1:{stats_port}/stats"}
    procs.stop(proc)


@pytest.fixture(params=["direct", "dax"])
def read_path(request):
    return request.param


@pytest.fixture
def ddb(request, read_path, infra, table_name, settings):
    """A fresh table per test, read directly or through the DAX node (see module docstring)."""
    from sessions_app import dynamo
    from sessions_app.services import table_delete, table_ensure

    settings.DYNAMODB_TABLE = table_name
    settings.DYNAMODB_ENDPOINT = infra["dynamodb_endpoint"]
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()
    table_ensure(table_name=table_name)
    if read_path == "dax":
        node = request.getfixturevalue("dax_node")
        settings.DAX_ENDPOINTS = [node["endpoint"]]
        settings.DAX_STATS_URL = node["stats_url"]
        dynamo.reset_connections()
    dynamo.path_stats_reset()
    yield table_name
    if read_path == "dax":
        # Every test on this path must really have gone through DAX (no silent fallback).
        stats = dynamo.path_stats()
        assert "fallback" not in stats, f"DAX calls fell back to DynamoDB: {stats}"
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()
    table_delete(table_name=table_name)
