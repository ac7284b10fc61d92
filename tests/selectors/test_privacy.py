"""The privacy dry runs and the customer delete: every session of the customer, whatever its age,
found through by_customer (the suite fails on any Scan), and an honest receipt with Redis down."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User

from sessions_app import keys
from sessions_app.clock import utcnow
from sessions_app.models import AuditLog, ChatItem
from sessions_app.selectors.listing import MAX_DAYS
from sessions_app.selectors.privacy import customer_session_ids, privacy_customer_plan
from sessions_app.services.privacy import privacy_customer_delete
from tests.builders import make_session
from tests.realtime.conftest import own_redis  # noqa: F401  (a Redis this test may kill)


def test_a_customer_plan_finds_sessions_older_than_any_listing_reaches(ddb, redis_client):
    old = make_session(customer_id="cust-old", turns=1, started_at=utcnow() - timedelta(days=MAX_DAYS + 30))
    new = make_session(customer_id="cust-old", turns=2)
    make_session(customer_id="cust-else", turns=1)
    assert customer_session_ids(customer_id="cust-old") == [old.session_id, new.session_id]
    plan = privacy_customer_plan(customer_id="cust-old")
    assert [p.session_id for p in plan.sessions] == [new.session_id, old.session_id]  # newest first
    assert plan.items == {"SessionMeta": 2, "Turn": 3, "ClientMessageMarker": 3} and plan.item_total == 8
    assert plan.redis_keys == []


def test_a_customer_with_nothing_stored_has_an_empty_plan(ddb, redis_client):
    plan = privacy_customer_plan(customer_id="nobody")
    assert (plan.sessions, plan.items, plan.redis_keys) == ([], {}, [])


def test_with_redis_down_the_store_is_still_erased_and_the_receipt_says_incomplete(ddb, own_redis, db):
    actor = User.objects.create_user("sam", is_staff=True)
    mine = [make_session(customer_id="cust-r", turns=1) for _ in range(2)]
    own_redis.kill()
    assert privacy_customer_plan(customer_id="cust-r").redis_keys is None
    receipt = privacy_customer_delete(actor=actor, customer_id="cust-r", confirm="cust-r")
    assert receipt.verified_empty and not receipt.complete and receipt.redis_error
    assert receipt.redis_keys_deleted is None and sorted(receipt.session_ids) == sorted(m.session_id for m in mine)
    assert all(list(ChatItem.query(keys.session_pk(m.session_id), consistent_read=True)) == [] for m in mine)
    row = AuditLog.objects.get(action="privacy_delete_customer")
    assert row.outcome == "incomplete" and row.detail["receipt"]["complete"] is False
