"""services.webhooks without a worker: requesting a delivery (not configured, broker down), the
console's retry, the signature and the backoff. Delivery itself: tests/tasks/test_webhook_delivery.py."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from devtools import procs
from sessions_app.exceptions import InvalidInput
from sessions_app.models import Turn
from sessions_app.services import webhooks
from sessions_app.services.turns import turn_append
from tests.fixtures.celery_workers import use_broker
from tests.tasks.test_webhook_delivery import SECRET, reply, turn_of


@pytest.fixture
def configured(settings):
    settings.BOT_WEBHOOK_URL = "http://127.0.0.1:9/hook"  # never reached: no worker runs here
    settings.BOT_WEBHOOK_SECRET = SECRET


def queued(broker_redis) -> list[dict]:
    """The task messages waiting on the broker (kombu's Redis transport: a list named "celery")."""
    return [json.loads(m)["headers"] for m in broker_redis.lrange("celery", 0, -1)]


def test_a_reply_queues_one_delivery_task_and_stays_pending(ddb, broker, broker_redis, configured):
    session_id, seq = reply()
    [headers] = queued(broker_redis)
    assert headers["task"] == webhooks.TASK_NAME
    assert json.loads(headers["argsrepr"].replace("'", '"')) == [session_id, seq]
    turn = turn_of(session_id, seq)
    assert (turn.delivery_state, int(turn.delivery_attempts), turn.delivery_error) == ("pending", 0, None)


def test_without_a_url_the_reply_is_not_configured_and_no_task_is_queued(ddb, broker, broker_redis, settings):
    settings.BOT_WEBHOOK_URL = None
    session_id, seq = reply()
    assert queued(broker_redis) == []
    turn = turn_of(session_id, seq)
    assert turn.delivery_state == "not_configured"
    assert turn.delivery_error == "BOT_WEBHOOK_URL is not set"
    # The console's retry does not pretend either: still not configured.
    assert webhooks.webhook_delivery_retry(session_id=session_id, seq=seq) == "not_configured"
    assert queued(broker_redis) == []


def test_a_url_without_a_secret_is_not_configured_replies_are_never_sent_unsigned(ddb, broker, broker_redis, settings):
    settings.BOT_WEBHOOK_URL = "http://127.0.0.1:9/hook"
    settings.BOT_WEBHOOK_SECRET = ""
    session_id, seq = reply()
    assert queued(broker_redis) == []
    turn = turn_of(session_id, seq)
    assert turn.delivery_state == "not_configured"
    assert "BOT_WEBHOOK_SECRET" in turn.delivery_error


def test_a_refused_publish_keeps_the_reply_pending_says_why_and_the_retry_queues_it(ddb, broker, broker_redis, configured):
    use_broker(f"redis://127.0.0.1:{procs.free_port()}/1")  # nothing listens there
    try:
        session_id, seq = reply()  # the reply itself is stored: staff_reply does not fail
    finally:
        use_broker(None)
    turn = turn_of(session_id, seq)
    assert turn.text and turn.delivery_state == "pending"
    assert turn.delivery_error.startswith("not queued: ")
    assert queued(broker_redis) == []

    assert webhooks.webhook_delivery_retry(session_id=session_id, seq=seq) == "pending"
    turn = turn_of(session_id, seq)
    assert (turn.delivery_state, int(turn.delivery_attempts), turn.delivery_error) == ("pending", 0, None)
    assert len(queued(broker_redis)) == 1


def test_retry_refuses_a_turn_that_is_not_a_staff_reply(ddb, broker, configured):
    session_id, seq = reply()
    user = turn_append(session_id=session_id, role="user", text="thanks!", client_msg_id="m-thanks")
    with pytest.raises(InvalidInput):
        webhooks.webhook_delivery_retry(session_id=session_id, seq=int(user.turn.seq))
    with pytest.raises(InvalidInput):
        webhooks.webhook_delivery_retry(session_id=session_id, seq=seq + 50)


def test_a_request_for_a_deleted_turn_never_raises_nor_recreates_it(ddb, broker, settings):
    settings.BOT_WEBHOOK_URL = None
    assert webhooks.webhook_delivery_request(session_id="no-such-session", seq=1) is None
    with pytest.raises(Turn.DoesNotExist):
        turn_of("no-such-session", 1)


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body():
    body = b'{"type":"staff_reply"}'
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhooks.webhook_signature(secret="s3cret", timestamp=1700000000, body=body) == f"v1={expected}"
    assert webhooks.idempotency_key(session_id="abc", seq=7) == "abc:7"


def test_backoff_is_exponential_jittered_and_capped():
    for attempt, (low, high) in {1: (1.0, 2.0), 2: (2.0, 4.0), 4: (8.0, 16.0)}.items():
        for _ in range(50):
            assert low <= webhooks.backoff_seconds(attempt, base=2.0) <= high
    assert webhooks.backoff_seconds(40, base=2.0) <= webhooks.BACKOFF_CAP_SECONDS
