"""Retention: every item a session owns carries the session's TTL, so DynamoDB's TTL removes
the whole session — turns, markers and summaries — after SESSION_TTL_DAYS, not META alone."""

from __future__ import annotations

from datetime import timedelta

from sessions_app import keys
from sessions_app.models import ChatItem
from sessions_app.services import session_start
from sessions_app.services.bulk import SessionSpec, sessions_bulk_load
from sessions_app.services.summaries import summary_generate
from sessions_app.services.turns import turn_append


def _items_by_type(session_id: str) -> dict[str, list[ChatItem]]:
    found: dict[str, list[ChatItem]] = {}
    for item in ChatItem.query(keys.session_pk(session_id), consistent_read=True):
        found.setdefault(type(item).__name__, []).append(item)
    return found


def test_every_item_type_written_by_the_services_carries_the_sessions_ttl(ddb, redis_client, settings):
    settings.SESSION_TTL_DAYS = 30
    meta, _ = session_start(customer_id="cust-ttl", channel="web")
    for n in range(1, 4):
        turn_append(session_id=meta.session_id, role="user", text=f"turn {n}", client_msg_id=f"ttl-{n}")
    assert summary_generate(session_id=meta.session_id).status == "written"
    items = _items_by_type(meta.session_id)
    assert set(items) == {"SessionMeta", "Turn", "ClientMessageMarker", "Summary"}
    expected = meta.started_at + timedelta(days=30)
    for kind, group in items.items():
        for item in group:
            assert item.expires_at is not None, f"{kind} {item.sk} has no ttl"
            assert abs((item.expires_at - expected).total_seconds()) < 1, (kind, item.sk, item.expires_at)


def test_bulk_loaded_sessions_carry_the_ttl_on_every_item(ddb, settings):
    settings.SESSION_TTL_DAYS = 7
    meta_started = session_start(customer_id="cust-probe", channel="web")[0].started_at
    spec = SessionSpec(customer_id="cust-bulk", channel="app", started_at=meta_started, session_id="bulk-ttl-1",
                       turns=[("user", "hello"), ("assistant", "hi")])
    assert sessions_bulk_load(specs=[spec], threads=1) == (1, 2)
    items = _items_by_type("bulk-ttl-1")
    assert set(items) == {"SessionMeta", "Turn", "ClientMessageMarker"}
    expected = meta_started + timedelta(days=7)
    assert all(abs((i.expires_at - expected).total_seconds()) < 1 for group in items.values() for i in group)
