"""The search index kept by the change feed (the real DynamoDB Local stream, the real consumer)
and rebuilt from the table: appends are found, a close moves the status filter, summaries are
searchable, deletes and TTL removals take the session out for good — on every engine, through
the product's own ``search_engine()`` (``search_settings``)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from django.contrib.auth import get_user_model

from sessions_app import dynamo, keys
from sessions_app.clock import utcnow
from sessions_app.search import search_engine
from sessions_app.search.engine import SearchFilter
from sessions_app.services import session_start
from sessions_app.services.privacy import privacy_delete_execute
from sessions_app.services.search_index import (
    index_batch_of,
    search_index,
    search_reindex,
    search_reindex_saved,
    search_reindex_sessions,
)
from sessions_app.services.sessions import session_close
from sessions_app.services.summaries import summary_write
from sessions_app.services.turns import turn_append
from sessions_app.streams.records import TTL_PRINCIPAL, change_from_record
from tests.builders import make_session
from tests.streams.conftest import drain, make_consumer, stream, stream_records  # noqa: F401 — the fixture

pytestmark = pytest.mark.usefixtures("search_settings")


def _found(query: str, **filters) -> list[tuple[str, int]]:
    return [(h.session_id, h.seq) for h in search_engine().search(query, filters=SearchFilter(**filters)).hits]


def _session(customer: str, *texts: str) -> str:
    meta, _ = session_start(customer_id=customer, channel="line")
    for i, text in enumerate(texts, 1):
        turn_append(session_id=meta.session_id, role="user" if i % 2 else "assistant", text=text, client_msg_id=f"m{i}")
    return meta.session_id


def test_appends_closes_and_summaries_reach_the_index_through_the_stream(stream):
    session_id = _session("alice", "ＯＮＥ ＰＩＥＣＥの105巻はありますか", "はい、在庫がございます")
    consumer = make_consumer(stream)
    drain(consumer)
    assert _found("one piece 105") == [(session_id, 1)]
    assert _found("在庫", customer_id="alice", channel="line", status="active") == [(session_id, 2)]
    assert search_engine().state().newest_change_at > utcnow() - timedelta(minutes=2)

    session_close(session_id=session_id, final_summary=False)
    drain(consumer)
    assert _found("在庫", status="closed") == [(session_id, 2)]
    assert _found("在庫", status="active") == []


def test_a_summary_is_found_as_the_sessions_summary(stream):
    session_id = _session("bob", "配送について")
    from sessions_app.selectors.sessions import session_get

    summary_write(session_id=session_id, through_seq=1, text="お客様は配送の遅れを問い合わせた", generator="test",
                  expires_at=session_get(session_id=session_id).expires_at)
    drain(make_consumer(stream))
    hits = search_engine().search("問い合わせ").hits
    assert [(h.session_id, h.kind, h.role, h.seq) for h in hits] == [(session_id, "summary", "summary", 1)]


def test_a_privacy_delete_removes_the_session_and_a_late_turn_stays_out(stream, db):
    session_id = _session("carol", "返品したいです", "承知しました")
    consumer = make_consumer(stream)
    drain(consumer)
    assert len(_found("返品")) == 1
    actor = get_user_model().objects.create_user("privacy-officer")
    receipt = privacy_delete_execute(actor=actor, session_id=session_id, confirm=session_id)
    assert receipt.search_docs_deleted == 2 and receipt.complete  # removed in the same action
    assert _found("返品") == []
    # Replaying the whole stream (its INSERTs come before the deletes) never brings it back.
    changes = [change_from_record(r) for r in stream_records(stream)]
    search_index(changes[: len(changes) // 2])
    assert _found("返品") == []
    drain(consumer)
    assert _found("返品") == []


def test_a_ttl_expiry_takes_the_session_out(stream):
    session_id = _session("dave", "表紙が破れていました")
    drain(make_consumer(stream))
    assert len(_found("表紙")) == 1
    # DynamoDB Local's deletes carry no TTL identity: delete here, mark the records as TTL's.
    client, table = dynamo.connection().client, stream.split("/")[1]
    for sk in (keys.META_SK, keys.turn_sk(1)):
        client.delete_item(TableName=table, Key={"PK": {"S": keys.session_pk(session_id)}, "SK": {"S": sk}})
    removals = [r for r in stream_records(stream) if r["eventName"] == "REMOVE"]
    for record in removals:
        record["userIdentity"] = {"type": "Service", "principalId": TTL_PRINCIPAL}
    search_index([change_from_record(r) for r in removals])
    assert _found("表紙") == []


def test_a_turn_of_a_session_the_index_never_saw_brings_its_meta_from_the_table(stream, search_settings):
    session_id = _session("erin", "ラーメンの漫画を探しています")
    turn_records = [r for r in stream_records(stream) if r["dynamodb"]["Keys"]["SK"]["S"].startswith(keys.TURN_PREFIX)]
    search_settings.fresh()  # an index that missed the META insert
    search_index([change_from_record(r) for r in turn_records])
    assert _found("ラーメン", customer_id="erin", channel="line") == [(session_id, 1)]


def test_a_delivery_state_change_is_not_indexed_again(stream):
    session_id = _session("fay", "hello")
    drain(make_consumer(stream))
    changes = [change_from_record(r) for r in stream_records(stream)]
    turn_insert = next(c for c in changes if c.item_type == "turn" and c.session_id == session_id)
    modified = replace(turn_insert, kind="MODIFY", old=turn_insert.new,
                       new={**turn_insert.new, "delivery_state": "delivered"})
    assert index_batch_of([modified]).docs == []
    assert [d.seq for d in index_batch_of([turn_insert]).docs] == [1]


def test_reindex_walks_the_day_index_resumes_and_writes_nothing_twice(ddb, search_settings, forbid_scans):
    today = utcnow().date()
    days = [today - timedelta(days=n) for n in range(3)]
    ids = [make_session(customer_id=f"r{n}", started_at=utcnow() - timedelta(days=n % 3), turns=2).session_id
           for n in range(9)]
    search_settings.fresh()
    pages = []
    first = search_reindex(day_from=days[-1], day_to=today, on_page=pages.append, stop=lambda: len(pages) >= 3)
    assert search_reindex_saved() is not None and first.sessions < 9
    done = search_reindex(day_from=days[-1], day_to=today)
    assert done.sessions == 9 and done.docs == 18 and search_reindex_saved() is None
    found = {h.session_id for h in search_engine().search("turn text", limit=100).hits}
    assert found == set(ids)
    assert search_engine().state().sessions == 9
    assert search_reindex_sessions(session_ids=ids[:2]) == 4  # idempotent: replaced, not added
    assert len(search_engine().search("turn text", limit=100).hits) == 18
    assert not forbid_scans


def test_retention_drops_only_the_months_past_every_sessions_ttl(ddb, search_settings, settings):
    from sessions_app.search.engine import IndexBatch, SessionDoc, TurnDoc
    from sessions_app.services.search_index import search_retention

    settings.SESSION_TTL_DAYS = 60
    now = utcnow().replace(year=2026, month=12, day=3)
    months = [now - timedelta(days=d) for d in (120, 70, 10)]  # August, September, November
    search_engine().apply(IndexBatch(
        sessions=[SessionDoc(session_id=f"s{i}", customer_id="c", channel="web", status="closed", started_at=at)
                  for i, at in enumerate(months)],
        docs=[TurnDoc(session_id=f"s{i}", seq=1, role="user", text="在庫", created_at=at) for i, at in enumerate(months)]))
    dropped = search_retention(now=now)
    if search_settings.kind == "sqlite":
        assert dropped == []  # no partitions: the feed's TTL removals and the TTL filter do it
        return
    # now - 60 days is in October: August and September hold only expired sessions' turns.
    assert [name[-6:] for name in dropped] == ["202608", "202609"]
    assert {h.session_id for h in search_engine().search("在庫").hits} == {"s2"}
