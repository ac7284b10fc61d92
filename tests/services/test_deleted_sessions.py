"""After a privacy delete nothing brings the session back: neither the bot runtime's heartbeats
and connection binds (refused, no Redis key written) nor a summary task that was already queued."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from sessions_app import dynamo, keys, selectors
from sessions_app.exceptions import SessionClosed, SessionNotFound
from sessions_app.models import ChatItem
from sessions_app.realtime import connection_get, presence_get, presence_online, realtime_keys_for_session
from sessions_app.services import session_close
from sessions_app.services.presence import connection_bind, presence_record
from sessions_app.services.privacy import privacy_delete_execute
from sessions_app.services.summaries import summary_request
from tests.builders import make_session
from tests.fixtures.celery_workers import wait_for
from tests.fixtures.read_paths import ddb  # noqa: F401  (each test runs direct and through DAX)


def _erase(session_id: str) -> None:
    actor, _ = get_user_model().objects.get_or_create(username="dpo", defaults={"is_staff": True})
    assert privacy_delete_execute(actor=actor, session_id=session_id, confirm=session_id).complete


@pytest.mark.django_db
def test_heartbeats_and_binds_of_a_deleted_session_are_refused_and_write_nothing(ddb, redis_client):
    meta = make_session(turns=2)
    selectors.session_get(session_id=meta.session_id)  # a copy in DAX's item cache, on that path
    assert presence_record(session_id=meta.session_id, connection_id="c-1") is True
    connection_bind(connection_id="c-1", session_id=meta.session_id)
    _erase(meta.session_id)
    with pytest.raises(SessionNotFound):
        presence_record(session_id=meta.session_id, connection_id="c-1")
    with pytest.raises(SessionNotFound):
        connection_bind(connection_id="c-2", session_id=meta.session_id)
    assert realtime_keys_for_session(session_id=meta.session_id) == [] and presence_online() == []
    assert connection_get(connection_id="c-2") is None


def test_heartbeats_and_binds_of_a_closed_session_are_refused(ddb, redis_client):
    meta = make_session()
    selectors.session_get(session_id=meta.session_id)
    session_close(session_id=meta.session_id)
    with pytest.raises(SessionClosed):
        presence_record(session_id=meta.session_id)
    with pytest.raises(SessionClosed):
        connection_bind(connection_id="c-1", session_id=meta.session_id)
    assert presence_get(session_id=meta.session_id).state == "offline" and connection_get(connection_id="c-1") is None


@pytest.mark.django_db
def test_a_closed_copy_dax_still_holds_of_a_deleted_session_is_not_found(ddb, redis_client):
    """Erased while DAX was bypassed (its fallback), the session's closed META can linger in
    DAX's item cache: the answer is still "not found", as DynamoDB says, not "closed"."""
    meta = make_session()
    session_close(session_id=meta.session_id)
    assert selectors.session_get(session_id=meta.session_id).status == "closed"  # DAX's copy, on that path
    with dynamo.dax_bypassed():
        _erase(meta.session_id)
    with pytest.raises(SessionNotFound):
        presence_record(session_id=meta.session_id)


def test_a_session_dax_has_not_seen_yet_is_not_refused(ddb, redis_client):
    """DAX remembers a miss (a negative entry) and may not have a session started a moment ago
    (here: written past it); a refusal is only ever decided by DynamoDB itself."""
    with pytest.raises(SessionNotFound):
        selectors.session_get(session_id="fresh-1")
    with dynamo.dax_bypassed():
        make_session(session_id="fresh-1")
    assert presence_record(session_id="fresh-1") is True
    assert presence_get(session_id="fresh-1").state == "online"


@pytest.mark.django_db(transaction=True)
def test_a_summary_queued_before_the_delete_writes_nothing(ddb, broker, request, task_returns):
    meta = make_session(turns=3)
    task_id = summary_request(session_id=meta.session_id, reason="every_n_turns")
    assert task_id is not None  # queued on the broker; no worker is running yet
    _erase(meta.session_id)
    request.getfixturevalue("worker")
    # Wait for the task's own return, not for "idle": between the worker popping the message
    # and reserving it, the broker's queue and unacked set are both empty (seen on a loaded box).
    wait_for(lambda: task_returns.of(task_id), what="the queued summary task to run")
    assert task_returns.of(task_id) == [{"status": "missing", "session_id": meta.session_id}]
    assert list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True)) == []
