"""Console test fixtures: real DynamoDB Local table and Redis (from tests/conftest.py), real
users in the Viewer / Supervisor groups created by the data migration."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User


def staff_user(*, username: str, group: str | None, is_staff: bool = True) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username, is_staff=is_staff)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def console(ddb, redis_client, db):
    """DynamoDB table + flushed Redis + database: everything a console page touches."""
    return ddb


@pytest.fixture
def viewer(db) -> User:
    return staff_user(username="vera", group="Viewer")


@pytest.fixture
def supervisor(db) -> User:
    return staff_user(username="sam", group="Supervisor")


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def supervisor_client(client, supervisor):
    client.force_login(supervisor)
    return client


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
