"""Cache coherence, live events and fleet counters from the real DynamoDB Local stream, run on
both read paths (direct and through the DAX node): changes the app did not make reach Redis."""

from __future__ import annotations

import json

from sessions_app import dynamo, keys
from sessions_app.realtime import (
    activity_recent,
    connection_get,
    connection_put,
    connections_for_session,
    presence_get,
    presence_heartbeat,
)
from sessions_app.selectors.context import context_load
from sessions_app.selectors.stream import fleet_summary
from sessions_app.services import session_start
from sessions_app.services.turns import turn_append
from sessions_app.streams.dispatch import batch_apply, handlers_from_settings
from sessions_app.streams.records import ORIGIN_TTL, TTL_PRINCIPAL, change_from_record
from tests.fixtures.read_paths import ddb  # noqa: F401 — both read paths

from .conftest import drain, make_consumer, stream_records


def _session_with_turns(n: int = 3, *, customer: str = "cust-1") -> str:
    meta, _ = session_start(customer_id=customer, channel="web")
    for i in range(1, n + 1):
        turn_append(session_id=meta.session_id, role="user" if i % 2 else "assistant", text=f"turn {i}",
                    client_msg_id=f"m{i}")
    return meta.session_id


def _context(session_id: str):
    load = context_load(session_id=session_id)
    return load, json.loads(load.payload)


def test_the_apps_own_writes_are_counted_and_published_but_leave_the_warm_cache_alone(stream, redis_client):
    session_id = _session_with_turns(3)
    _context(session_id)
    assert _context(session_id)[0].source == "redis"
    consumer = make_consumer(stream)
    drain(consumer)
    # App-made changes: their cache effects happened on the write path; the feed does not redo them.
    assert _context(session_id)[0].source == "redis"
    fleet = fleet_summary(minutes=5)
    assert fleet.total("turns") == 3 and fleet.by_channel("started")["web"] == 1
    events = activity_recent(limit=10)
    assert [e["kind"] for e in reversed(events)] == ["started", "turn", "turn", "turn"]
    assert [e["seq"] for e in events if e["kind"] == "turn"] == [3, 2, 1]
    assert all(e["session_id"] == session_id for e in events)
    assert consumer.stats.records >= 7  # META insert, 3 × (turn, marker, META update)


def test_a_meta_closed_by_hand_is_reflected_by_the_context_with_the_cache_warm(stream, redis_client, read_path):
    session_id = _session_with_turns(2)
    presence_heartbeat(session_id=session_id, connection_id="conn-1")
    _context(session_id)
    assert _context(session_id)[0].source == "redis"
    consumer = make_consumer(stream)
    drain(consumer)

    # Someone closes the session with boto3, bypassing the app (and DAX).
    dynamo.connection().client.update_item(
        TableName=stream.split("/")[1], Key={"PK": {"S": keys.session_pk(session_id)}, "SK": {"S": keys.META_SK}},
        UpdateExpression="SET #s = :c", ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": {"S": "closed"}})
    assert _context(session_id)[1]["session"]["status"] == "active"  # the cache does not know yet
    drain(consumer)

    load, body = _context(session_id)
    assert load.source != "redis" and body["session"]["status"] == "closed"
    if read_path == "dax":
        # DAX never saw the write: the feed made this read go strongly consistent.
        assert load.source == dynamo.ROUTE_CONSISTENT
    assert presence_get(session_id=session_id).state == "offline"
    assert [e["kind"] for e in activity_recent(limit=1)] == ["closed"]
    assert fleet_summary(minutes=5).by_channel("closed")["web"] == 1


def test_a_turn_written_by_another_service_shows_in_the_next_context(stream, redis_client):
    session_id = _session_with_turns(2)
    _context(session_id)
    consumer = make_consumer(stream)
    drain(consumer)
    client, table = dynamo.connection().client, stream.split("/")[1]
    pk = keys.session_pk(session_id)
    client.transact_write_items(TransactItems=[
        {"Put": {"TableName": table, "Item": {
            "PK": {"S": pk}, "SK": {"S": keys.turn_sk(3)}, "type": {"S": "turn"}, "seq": {"N": "3"},
            "role": {"S": "assistant"}, "text": {"B": __import__("zlib").compress("from elsewhere".encode())},
            "created_at": {"S": "2026-12-02T10:00:00.000000+0000"}, "client_msg_id": {"S": "ext-3"}}}},
        {"Update": {"TableName": table, "Key": {"PK": {"S": pk}, "SK": {"S": keys.META_SK}},
                    "UpdateExpression": "SET turn_count = :n", "ExpressionAttributeValues": {":n": {"N": "3"}}}},
    ])
    drain(consumer)
    load, body = _context(session_id)
    assert load.seq == 3 and [t["text"] for t in body["turns"]][-1] == "from elsewhere"
    assert fleet_summary(minutes=60 * 24).total("turns") == 3


def test_a_ttl_removal_drops_cached_context_presence_and_connections_and_counts_once(stream, redis_client):
    session_id = _session_with_turns(2)
    _context(session_id)
    presence_heartbeat(session_id=session_id, connection_id="conn-9")
    connection_put(connection_id="conn-9", session_id=session_id)
    assert redis_client.exists(f"ctx:{session_id}")

    # DynamoDB Local does not write TTL deletions' identity, so the deletes are made here and
    # their real stream records carry the identity DynamoDB's TTL puts on its own.
    client, table = dynamo.connection().client, stream.split("/")[1]
    pk = keys.session_pk(session_id)
    for sk in (keys.META_SK, keys.turn_sk(1), keys.turn_sk(2)):
        client.delete_item(TableName=table, Key={"PK": {"S": pk}, "SK": {"S": sk}})
    removals = [r for r in stream_records(stream) if r["eventName"] == "REMOVE"]
    assert len(removals) == 3
    for record in removals:
        record["userIdentity"] = {"type": "Service", "principalId": TTL_PRINCIPAL}
    changes = [change_from_record(r) for r in removals]
    assert {c.origin for c in changes} == {ORIGIN_TTL}

    for _ in range(2):  # the second time is a redelivery: nothing more happens
        outcome = batch_apply(changes, handlers_from_settings())
        assert not outcome.failures
    assert not redis_client.exists(f"ctx:{session_id}")
    assert presence_get(session_id=session_id).state == "offline"
    assert connection_get(connection_id="conn-9") is None and connections_for_session(session_id=session_id) == []
    assert fleet_summary(minutes=5).total("expired") == 1
    assert [e["kind"] for e in activity_recent(limit=5)].count("expired") == 1


def test_hand_off_transitions_are_published_as_live_events(stream, redis_client):
    from sessions_app.services.handoff import handoff_release, handoff_request, handoff_take, staff_reply

    session_id = _session_with_turns(1)
    handoff_request(session_id=session_id, reason="needs a person")
    handoff_take(session_id=session_id, username="aiko", display_name="Aiko")
    staff_reply(session_id=session_id, username="aiko", display_name="Aiko", text="hello")  # no webhook configured
    handoff_release(session_id=session_id, username="aiko")
    drain(make_consumer(stream))
    events = list(reversed(activity_recent(limit=10)))
    assert [e["kind"] for e in events] == ["started", "turn", "handed_off", "taken_over", "turn", "delivery",
                                           "handed_back"]
    assert events[3]["owner"] == "Aiko" and events[4]["role"] == "agent"
    assert events[5] == {**events[5], "seq": 2, "state": "not_configured"}
