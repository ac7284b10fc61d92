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
