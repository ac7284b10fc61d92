"""Staff replies delivered to the bot webhook: a real HTTP receiver (http.server in a thread) and a
real Celery worker (tests/fixtures/celery_workers.py) on the test broker."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid

import pytest

from devtools import procs
from sessions_app import keys
from sessions_app.jobs import task_publish
from sessions_app.models import Turn
from sessions_app.services.handoff import handoff_request, handoff_take, staff_reply
from sessions_app.services.sessions import session_start
from sessions_app.services.webhooks import TASK_NAME, webhook_delivery_retry
from tests.fixtures.http_receiver import Received, receiving
from tests.fixtures.celery_workers import wait_for

SECRET = "whsec-test-" + "x" * 24
TEXT = "Vol. 3 ships tomorrow — 明日発送です"
AUTHOR = "Sam K."


@pytest.fixture
def receiver():
    with receiving("/hooks/mangaassist") as r:
        yield r


@pytest.fixture
def webhook(settings, receiver):
    settings.BOT_WEBHOOK_URL = receiver.url
    settings.BOT_WEBHOOK_SECRET = SECRET
    settings.BOT_WEBHOOK_BACKOFF_SECONDS = 0.01
    settings.BOT_WEBHOOK_MAX_ATTEMPTS = 8
    settings.BOT_WEBHOOK_TIMEOUT = 5.0
    return receiver


def reply() -> tuple[str, int]:
    """A handed-off session taken over by Sam, and Sam's reply, through the services."""
    meta, _ = session_start(customer_id="cust-webhook", channel="web")
    handoff_request(session_id=meta.session_id, reason="customer asked for a human")
    handoff_take(session_id=meta.session_id, username="sam", display_name=AUTHOR)
    result = staff_reply(session_id=meta.session_id, username="sam", display_name=AUTHOR, text=TEXT)
    return meta.session_id, int(result.turn.seq)


def turn_of(session_id: str, seq: int) -> Turn:
    return Turn.get(keys.session_pk(session_id), keys.turn_sk(seq), consistent_read=True)


def state_is(session_id: str, seq: int, state: str):
    return lambda: turn_of(session_id, seq).delivery_state == state


def verify(request: Received, *, secret: str = SECRET, now: float | None = None) -> dict:
    """What a receiver does (README §"Staff replies: the bot webhook"): HMAC-SHA256 over
    ``b"<timestamp>." + raw body`` with the shared secret, compared in constant time, and the
    timestamp no older than 5 minutes. Returns the parsed body."""
    timestamp = request.headers["X-MangaAssist-Timestamp"]
    expected = "v1=" + hmac.new(secret.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-MangaAssist-Signature"], expected)
    assert abs((now or time.time()) - int(timestamp)) <= 300
    return json.loads(request.body)


def test_a_reply_is_delivered_once_signed_and_the_turn_says_delivered(worker, webhook, task_returns):
    session_id, seq = reply()
    wait_for(state_is(session_id, seq, "delivered"), what="the reply to be delivered")
    worker.wait_idle()

    [request] = webhook.received()
    body = verify(request)
    assert body == {"type": "staff_reply", "session_id": session_id, "seq": seq, "role": "agent", "author": AUTHOR,
                    "text": TEXT, "created_at": body["created_at"], "idempotency_key": f"{session_id}:{seq}"}
    turn = turn_of(session_id, seq)
    assert body["created_at"] == turn.created_at.isoformat().replace("+00:00", "Z")
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-MangaAssist-Idempotency-Key"] == f"{session_id}:{seq}"
    assert (turn.delivery_state, int(turn.delivery_attempts), turn.delivery_error) == ("delivered", 1, None)
    assert turn.delivered_at is not None and turn.delivered_at >= turn.created_at
    # A tampered body or another secret does not verify.
    with pytest.raises(AssertionError):
        verify(Received(headers=request.headers, body=request.body.replace(b"tomorrow", b"today"), at=request.at))
    with pytest.raises(AssertionError):
        verify(request, secret="another-secret")

    # A redelivered task (at least once) for a delivered turn does nothing.
    task_id = uuid.uuid4().hex
    task_publish(name=TASK_NAME, args=[session_id, seq], task_id=task_id)
    [result] = wait_for(lambda: task_returns.of(task_id), what="the redelivered task")
    worker.wait_idle()
    assert result["status"] == "already_delivered"
    assert len(webhook.received()) == 1
    assert int(turn_of(session_id, seq).delivery_attempts) == 1


def test_two_failures_then_success_is_delivered_once_with_one_idempotency_key(worker, webhook, caplog):
    caplog.set_level(logging.DEBUG)
    webhook.answer(500, 500, then=200)
    session_id, seq = reply()
    wait_for(state_is(session_id, seq, "delivered"), what="the reply to be delivered")
    worker.wait_idle()

    requests = webhook.received()
    assert len(requests) == 3
    assert {r.headers["X-MangaAssist-Idempotency-Key"] for r in requests} == {f"{session_id}:{seq}"}
    assert {verify(r)["idempotency_key"] for r in requests} == {f"{session_id}:{seq}"}
    turn = turn_of(session_id, seq)
    assert (turn.delivery_state, int(turn.delivery_attempts), turn.delivery_error) == ("delivered", 3, None)
    # Neither the reply's text nor the secret is ever logged.
    assert any(session_id in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if TEXT in r.getMessage() or SECRET in r.getMessage()]


def test_a_receiver_that_keeps_failing_fails_the_delivery_after_the_last_attempt(worker, webhook, settings):
    settings.BOT_WEBHOOK_MAX_ATTEMPTS = 3
    webhook.answer(then=500)
    session_id, seq = reply()
    wait_for(state_is(session_id, seq, "failed"), what="the delivery to fail")
    worker.wait_idle()

    assert len(webhook.received()) == 3
    turn = turn_of(session_id, seq)
    assert int(turn.delivery_attempts) == 3
    assert "HTTP 500" in turn.delivery_error and "gave up after 3 attempts" in turn.delivery_error
    assert turn.delivered_at is None


def test_a_4xx_refusal_fails_at_once(worker, webhook):
    webhook.answer(then=400)
    session_id, seq = reply()
    wait_for(state_is(session_id, seq, "failed"), what="the delivery to fail")
    worker.wait_idle()

    assert len(webhook.received()) == 1
    turn = turn_of(session_id, seq)
    assert int(turn.delivery_attempts) == 1
    assert "HTTP 400" in turn.delivery_error and "permanent" in turn.delivery_error


def test_429_and_408_are_retried_not_permanent(worker, webhook):
    webhook.answer(429, 408, then=200)
    session_id, seq = reply()
    wait_for(state_is(session_id, seq, "delivered"), what="the reply to be delivered")
    worker.wait_idle()
    assert len(webhook.received()) == 3
    assert int(turn_of(session_id, seq).delivery_attempts) == 3


def test_an_unreachable_receiver_is_retried_and_fails_with_the_connection_error(worker, webhook, settings):
    settings.BOT_WEBHOOK_URL = f"http://127.0.0.1:{procs.free_port()}/hook"  # nothing listens there
    settings.BOT_WEBHOOK_MAX_ATTEMPTS = 2
    session_id, seq = reply()
    wait_for(state_is(session_id, seq, "failed"), what="the delivery to fail")
    worker.wait_idle()
    turn = turn_of(session_id, seq)
    assert int(turn.delivery_attempts) == 2
    assert "connection error" in turn.delivery_error and "gave up after 2 attempts" in turn.delivery_error


def test_retry_after_a_failure_delivers_with_a_fresh_attempt_budget(worker, webhook):
    webhook.answer(then=400)
    session_id, seq = reply()
    wait_for(state_is(session_id, seq, "failed"), what="the delivery to fail")
    worker.wait_idle()

    webhook.answer(then=200)  # the receiver was fixed
    assert webhook_delivery_retry(session_id=session_id, seq=seq) == "pending"
    wait_for(state_is(session_id, seq, "delivered"), what="the retried delivery")
    worker.wait_idle()
    requests = webhook.received()
    assert len(requests) == 2
    assert requests[0].headers["X-MangaAssist-Idempotency-Key"] == requests[1].headers["X-MangaAssist-Idempotency-Key"]
    turn = turn_of(session_id, seq)
    assert (int(turn.delivery_attempts), turn.delivery_error) == (1, None)

    # Retrying a delivered reply sends nothing.
    assert webhook_delivery_retry(session_id=session_id, seq=seq) == "delivered"
    worker.wait_idle()
    assert len(webhook.received()) == 2


def test_without_a_webhook_url_the_reply_is_not_configured_and_nothing_is_sent(worker, webhook, settings, broker_redis):
    settings.BOT_WEBHOOK_URL = None
    session_id, seq = reply()
    turn = turn_of(session_id, seq)
    assert turn.delivery_state == "not_configured"
    assert "BOT_WEBHOOK_URL" in turn.delivery_error
    assert broker_redis.llen("celery") == 0  # no task was published
    worker.wait_idle()
    assert webhook.received() == []
