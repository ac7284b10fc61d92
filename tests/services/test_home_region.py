"""A session's home region (global tables): it is written where it started, reads are answered
anywhere, and a write elsewhere is refused (409 ``wrong_region``, naming the home region) before
anything is written — replication resolves concurrent writes by last writer wins, which would
break the turn sequence.

DynamoDB Local keeps one database per region, so "another region's replica" is simulated by
reusing the start region's connection while ``AWS_REGION`` names the other region: the same
items, seen by a deployment of another region — what a global table gives.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.test import Client

from sessions_app import dynamo, keys
from sessions_app.clock import utcnow
from sessions_app.exceptions import WrongRegion
from sessions_app.models import ClientMessageMarker, SessionMeta, Summary, Turn
from sessions_app.services import session_close, session_start
from sessions_app.services.api_keys import api_key_create
from sessions_app.services.handoff import handoff_lapse, handoff_request, handoff_take, staff_reply
from sessions_app.services.staff import staff_summary_request
from sessions_app.services.summaries import Outcome, summary_generate, summary_sweep
from tests.api.conftest import Api, error_of

HOME, OTHER = "us-east-1", "eu-west-1"


@pytest.fixture
def home(ddb, redis_client, settings):
    settings.AWS_REGION = HOME
    dynamo.reset_connections()
    return ddb


@pytest.fixture
def api(home, db) -> Api:
    return Api(client=Client(), key=api_key_create(name="bot-runtime", scope="write")[1])


@contextmanager
def in_region(settings, region: str):
    """Run the block as the deployment of ``region`` over the same items (see the module doc)."""
    key = (settings.DYNAMODB_ENDPOINT, region)
    dynamo._connections[key] = dynamo.connection()
    previous, settings.AWS_REGION = settings.AWS_REGION, region
    try:
        yield
    finally:
        settings.AWS_REGION = previous
        dynamo._connections.pop(key, None)


def _meta(session_id: str) -> SessionMeta:
    return SessionMeta.get(keys.session_pk(session_id), keys.META_SK, consistent_read=True)


def _items(session_id: str, model) -> list:
    return list(model.query(keys.session_pk(session_id), consistent_read=True))


def _start(api: Api) -> str:
    response = api.post("/sessions", {"customer_id": "cust-1", "channel": "web"})
    assert response.status_code == 201, response.content
    return response.json()["session_id"]


def _append(api: Api, session_id: str, msg: str, role: str = "user"):
    return api.post(f"/sessions/{session_id}/turns", {"role": role, "text": f"text of {msg}", "client_msg_id": msg})


def _wrong_region(response) -> dict:
    assert response.status_code == 409, response.content
    error = error_of(response)
    assert error["code"] == "wrong_region" and error["field"] == "session_id"
    assert error["details"] == {"home_region": HOME, "region": OTHER}
    return error


def test_a_session_is_homed_in_the_region_it_starts_in(api):
    session_id = _start(api)
    assert _meta(session_id).home_region == HOME
    meta, created = session_start(customer_id="cust-2", channel="app")
    assert created and _meta(meta.session_id).home_region == HOME


def test_an_append_in_another_region_is_refused_and_writes_nothing(api, settings):
    session_id = _start(api)
    assert _append(api, session_id, "m1").status_code == 201
    with in_region(settings, OTHER):
        error = _wrong_region(_append(api, session_id, "m2"))
        assert HOME in error["message"]
        # A replay of a stored turn is refused too: the bot must learn where the session lives.
        _wrong_region(_append(api, session_id, "m1"))
    meta = _meta(session_id)
    assert int(meta.turn_count) == 1 and int(meta.rev) == 2  # the start and the first append only
    assert [int(t.seq) for t in _items(session_id, Turn)] == [1]
    assert [m.sk for m in _items(session_id, ClientMessageMarker)] == [keys.client_msg_sk("m1")]
    # Back home the sequence simply goes on: no gap, no duplicate.
    response = _append(api, session_id, "m2")
    assert response.status_code == 201 and response.json()["seq"] == 2


def test_close_and_handoff_in_another_region_are_refused(api, settings):
    session_id = _start(api)
    with in_region(settings, OTHER):
        _wrong_region(api.post(f"/sessions/{session_id}/close"))
        _wrong_region(api.post(f"/sessions/{session_id}/handoff", {"reason": "asks for a human"}))
        with pytest.raises(WrongRegion):
            session_close(session_id=session_id)
    meta = _meta(session_id)
    assert meta.status == "active" and meta.closed_at is None and meta.handoff_reason is None
    assert api.post(f"/sessions/{session_id}/close").status_code == 200


def test_staff_writes_in_another_region_are_refused(api, settings):
    from django.contrib.auth import get_user_model

    session_id = _start(api)
    handoff_request(session_id=session_id, reason="asks for a human")
    with in_region(settings, OTHER):
        with pytest.raises(WrongRegion) as refused:
            handoff_take(session_id=session_id, username="ada", display_name="Ada")
        assert refused.value.details["home_region"] == HOME and refused.value.http_status == 409
    handoff_take(session_id=session_id, username="ada", display_name="Ada")
    actor = get_user_model().objects.create_user(username="sam", password="pw")
    with in_region(settings, OTHER):
        with pytest.raises(WrongRegion):
            staff_reply(session_id=session_id, username="ada", display_name="Ada", text="Hello from staff")
        with pytest.raises(WrongRegion):
            staff_summary_request(actor=actor, session_id=session_id)
    assert _items(session_id, Turn) == [] and _meta(session_id).summary_state is None


def test_sweeps_and_summaries_elsewhere_leave_the_session_to_its_home_region(api, settings):
    session_id = _start(api)
    for n in range(3):
        assert _append(api, session_id, f"m{n}").status_code == 201
    handoff_request(session_id=session_id, reason="asks for a human")
    handoff_take(session_id=session_id, username="ada", display_name="Ada")
    later = utcnow() + timedelta(days=1)
    before = _meta(session_id)
    with in_region(settings, OTHER):
        assert handoff_lapse(session_id=session_id, idle_before=later) is False
        report = summary_sweep(now=later)
        assert session_id not in report.requested + report.pending + report.cleared + report.not_queued
        outcome = summary_generate(session_id=session_id)
        assert outcome.status == Outcome.WRONG_REGION == "wrong_region"
    after = _meta(session_id)
    assert int(after.rev) == int(before.rev) and after.owner == "ada" and _items(session_id, Summary) == []
    # Home, the same sweep and task do their work.
    assert summary_generate(session_id=session_id).status == Outcome.WRITTEN
    assert handoff_lapse(session_id=session_id, idle_before=later) is True


def test_reads_are_answered_in_any_region(api, settings):
    session_id = _start(api)
    assert _append(api, session_id, "m1").status_code == 201
    with in_region(settings, OTHER):
        session = api.get(f"/sessions/{session_id}")
        assert session.status_code == 200 and session.json()["turn_count"] == 1
        context = api.get(f"/sessions/{session_id}/context")
        assert context.status_code == 200 and [t["seq"] for t in context.json()["turns"]] == [1]
        listing = api.get("/sessions", customer_id="cust-1")
        assert listing.status_code == 200 and [s["session_id"] for s in listing.json()["sessions"]] == [session_id]


def test_a_session_without_a_home_region_is_written_anywhere(api, settings):
    session_id = _start(api)
    _meta(session_id).update(actions=[SessionMeta.home_region.remove()])  # as started before it was recorded
    with in_region(settings, OTHER):
        response = _append(api, session_id, "m1")
        assert response.status_code == 201 and response.json()["seq"] == 1
        assert api.post(f"/sessions/{session_id}/close").status_code == 200
    meta = _meta(session_id)
    assert meta.home_region is None and meta.status == "closed" and int(meta.turn_count) == 1


def test_a_retried_start_that_reaches_another_region_says_where_the_session_lives(home, settings):
    session_start(customer_id="cust-1", channel="web", session_id="fixed-id-1")
    with in_region(settings, OTHER):
        with pytest.raises(WrongRegion) as refused:
            session_start(customer_id="cust-1", channel="web", session_id="fixed-id-1")
    assert refused.value.details == {"home_region": HOME, "region": OTHER}
    assert session_start(customer_id="cust-1", channel="web", session_id="fixed-id-1")[1] is False
