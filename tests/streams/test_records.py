"""Reading stream records: origins and change times, on real DynamoDB Local records."""

from __future__ import annotations

from sessions_app import dynamo, keys
from sessions_app.services import session_start
from sessions_app.services.turns import turn_append
from sessions_app.streams.records import ORIGIN_APP, ORIGIN_DELETE, ORIGIN_OUTSIDE, changes_from_records

from .conftest import stream_records


def test_origins_tell_the_apps_writes_from_everyone_elses(stream, redis_client):
    meta, _ = session_start(customer_id="cust-r", channel="web")
    turn_append(session_id=meta.session_id, role="user", text="hi", client_msg_id="m1")
    client, table = dynamo.connection().client, stream.split("/")[1]
    key = {"PK": {"S": keys.session_pk(meta.session_id)}, "SK": {"S": keys.META_SK}}
    client.update_item(TableName=table, Key=key, UpdateExpression="SET tags = :t",
                       ExpressionAttributeValues={":t": {"L": [{"S": "vip"}]}})
    client.put_item(TableName=table, Item={"PK": key["PK"], "SK": {"S": "NOTE#1"}, "type": {"S": "note"}})
    client.delete_item(TableName=table, Key={"PK": key["PK"], "SK": {"S": "NOTE#1"}})
    changes = changes_from_records(stream_records(stream))
    assert [(c.kind, c.item_type, c.origin) for c in changes] == [
        ("INSERT", "customer", ORIGIN_APP), ("INSERT", "session", ORIGIN_APP),  # session_start
        ("INSERT", "turn", ORIGIN_APP), ("INSERT", "msgid", ORIGIN_APP), ("MODIFY", "session", ORIGIN_APP),
        ("MODIFY", "session", ORIGIN_OUTSIDE),  # the hand edit left rev alone
        ("INSERT", "note", ORIGIN_OUTSIDE),
        ("REMOVE", "note", ORIGIN_DELETE),
    ]
    assert changes[4].new["rev"] == changes[4].old["rev"] + 1


def test_a_record_without_its_own_time_is_not_dated_before_the_record_it_follows(stream, redis_client):
    meta, _ = session_start(customer_id="cust-t", channel="web")
    result = turn_append(session_id=meta.session_id, role="user", text="hi", client_msg_id="m1")
    changes = changes_from_records(stream_records(stream))
    # session_start wrote the customer's directory entry and the META first.
    [turn] = [c for c in changes if c.item_type == "turn"]
    [marker] = [c for c in changes if c.item_type == "msgid"]
    assert changes.index(marker) == changes.index(turn) + 1
    assert turn.timed and turn.changed_at == result.turn.created_at
    # The marker names no time and DynamoDB Local rounds the stream's to the minute: it takes
    # the turn's, which it cannot precede.
    assert not marker.timed and marker.changed_at == turn.changed_at
