"""Hand-off transitions against DynamoDB Local, on both read paths."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from sessions_app.clock import utcnow
from sessions_app.exceptions import AlreadyOwned, BotPaused, NotHandedOff, NotOwner
from sessions_app.selectors import session_get
from sessions_app.selectors.handoff import handoff_queue, handoff_queue_count, handoff_state, sessions_owned
from sessions_app.services import session_close, session_start
from sessions_app.services.handoff import (
    handoff_lapse_idle,
    handoff_release,
    handoff_request,
    handoff_take,
    staff_reply,
)
from sessions_app.services.turns import turn_write
from tests.fixtures.read_paths import ddb  # noqa: F401 — both read paths


def _waiting(customer="c1") -> str:
    meta, _ = session_start(customer_id=customer, channel="web")
    handoff_request(session_id=meta.session_id, reason="needs a person")
    return meta.session_id


def test_a_bot_write_prepared_before_a_takeover_is_refused_by_the_transaction(ddb, redis_client):
    session_id = _waiting()
    stale = session_get(session_id=session_id, consistent=True)  # the bot's read: nobody owns it
    handoff_take(session_id=session_id, username="aiko", display_name="Aiko")
    with pytest.raises(BotPaused) as refused:
        turn_write(session_id=session_id, role="assistant", text="too late", client_msg_id="late", meta=stale)
    assert refused.value.details["owner"] == "Aiko"
    assert int(session_get(session_id=session_id, consistent=True).turn_count) == 0
    # The customer's turns still land.
    assert turn_write(session_id=session_id, role="user", text="hello?", client_msg_id="u1", meta=stale).created


def test_two_staff_taking_over_at_once_get_one_owner(ddb, redis_client):
    session_id = _waiting()

    def take(name):
        try:
            return handoff_take(session_id=session_id, username=name, display_name=name.title())
        except AlreadyOwned as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(take, ["aiko", "ken"]))
    winners = [r for r in results if not isinstance(r, Exception)]
    losers = [r for r in results if isinstance(r, AlreadyOwned)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].details["owner"] == winners[0].owner_name
    assert session_get(session_id=session_id, consistent=True).owner == winners[0].owner


def test_queue_owner_index_reply_release_and_lapse(ddb, redis_client, settings):
    first, second, third = _waiting("c1"), _waiting("c2"), _waiting("c3")
    assert [m.session_id for m in handoff_queue()] == [first, second, third]  # oldest first
    assert handoff_queue_count() == 3
    handoff_take(session_id=second, username="aiko", display_name="Aiko")
    assert [m.session_id for m in handoff_queue()] == [first, third] and handoff_queue_count() == 2
    assert [m.session_id for m in sessions_owned(username="aiko")] == [second]
    state = handoff_state(session_get(session_id=second, consistent=True))
    assert state["state"] == "human" and state["owner"] == "Aiko" and state["reason"] == "needs a person"

    with pytest.raises(NotOwner):
        staff_reply(session_id=second, username="ken", display_name="Ken", text="not mine")
    reply = staff_reply(session_id=second, username="aiko", display_name="Aiko", text="こんにちは")
    assert reply.turn.role == "agent" and reply.turn.author == "Aiko" and reply.turn.delivery_state in (
        "pending", "not_configured")
    with pytest.raises(NotOwner):
        handoff_release(session_id=second, username="ken")

    # Aiko goes quiet: after HANDOFF_IDLE_MINUTES the session waits in the queue again (not the bot).
    assert handoff_lapse_idle(now=utcnow() + timedelta(minutes=settings.HANDOFF_IDLE_MINUTES - 1)) == 0
    assert handoff_lapse_idle(now=utcnow() + timedelta(minutes=settings.HANDOFF_IDLE_MINUTES + 1)) == 1
    lapsed = session_get(session_id=second, consistent=True)
    assert handoff_state(lapsed)["state"] == "waiting" and lapsed.owner is None
    assert [m.session_id for m in handoff_queue()] == [first, second, third]  # back in its place
    assert sessions_owned(username="aiko") == []

    handoff_take(session_id=first, username="ken", display_name="Ken")
    back = handoff_release(session_id=first, username="ken")
    assert handoff_state(back)["state"] == "bot" and back.status == "active"
    with pytest.raises(NotHandedOff):
        handoff_take(session_id=first, username="ken", display_name="Ken")

    session_close(session_id=third)
    assert [m.session_id for m in handoff_queue()] == [second]  # a closed session waits for nobody
