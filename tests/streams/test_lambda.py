"""The Lambda entry point on records read from DynamoDB Local's own stream, wrapped in the event
shape a DynamoDB Streams event source mapping delivers (JSON: epoch-second times, base64 binary)."""

from __future__ import annotations

import base64
import json
from datetime import datetime

from sessions_app.realtime import activity_recent
from sessions_app.selectors.context import context_load
from sessions_app.selectors.stream import fleet_summary
from sessions_app.services import session_start
from sessions_app.services.turns import turn_append
from sessions_app.streams.records import change_from_record

from .conftest import stream_records


def lambda_event(records: list[dict], arn: str) -> dict:
    """GetRecords records as Lambda hands them to a function: the same record, serialised to
    JSON the way the Lambda service does it, plus the event source ARN."""

    def encode(value):
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, (bytes, bytearray)):
            return base64.b64encode(value).decode()
        raise TypeError(type(value))

    wrapped = [dict(record, eventSourceARN=arn) for record in records]
    return json.loads(json.dumps({"Records": wrapped}, default=encode))


def _session(n: int, channel: str = "email") -> str:
    meta, _ = session_start(customer_id="cust-l", channel=channel)
    for i in range(1, n + 1):
        turn_append(session_id=meta.session_id, role="user", text=f"ワンピース {i}巻", client_msg_id=f"m{i}")
    return meta.session_id


def test_lambda_records_read_like_getrecords_records(stream, redis_client):
    _session(1)
    records = stream_records(stream)
    event = lambda_event(records, stream)
    for raw, wrapped in zip(records, event["Records"], strict=True):
        a, b = change_from_record(raw), change_from_record(wrapped)
        assert (a.seq, a.kind, a.pk, a.sk, a.item_type, a.origin, a.old, a.new) == \
               (b.seq, b.kind, b.pk, b.sk, b.item_type, b.origin, b.old, b.new)
    turn = next(change_from_record(r) for r in event["Records"] if r["dynamodb"]["Keys"]["SK"]["S"].startswith("TURN#"))
    assert isinstance(turn.new["text"], bytes)  # base64 in the event, bytes for the handlers


def test_lambda_handler_applies_the_batch(stream, redis_client):
    from sessions_app.aws_lambda import lambda_handler

    session_id = _session(3)
    context_load(session_id=session_id)
    answer = lambda_handler(lambda_event(stream_records(stream), stream), None)
    assert answer == {"batchItemFailures": []}
    fleet = fleet_summary(minutes=5)
    assert fleet.total("turns") == 3 and fleet.by_channel("started")["email"] == 1
    assert [e["kind"] for e in activity_recent(limit=10)].count("turn") == 3
    # A redelivered batch (Lambda retries whole batches) changes nothing.
    assert lambda_handler(lambda_event(stream_records(stream), stream), None) == {"batchItemFailures": []}
    assert fleet_summary(minutes=5).total("turns") == 3
    assert context_load(session_id=session_id).source == "redis"  # app writes: the warm cache stays


def test_a_failing_record_is_reported_and_the_rest_of_the_batch_still_applied(stream, redis_client, settings, monkeypatch):
    from sessions_app.aws_lambda import lambda_handler

    _session(4)
    records = stream_records(stream)
    turn_records = [r for r in records if r["dynamodb"]["Keys"]["SK"]["S"].startswith("TURN#")]
    broken = turn_records[1]["dynamodb"]["SequenceNumber"]  # turn 2
    settings.STREAM_HANDLERS = [*settings.STREAM_HANDLERS, "tests.streams.probe.record"]
    monkeypatch.setenv("PROBE_FAIL_SEQ", broken)

    answer = lambda_handler(lambda_event(records, stream), None)
    failed = [f["itemIdentifier"] for f in answer["batchItemFailures"]]
    assert failed[0] == broken  # Lambda checkpoints before the lowest and retries from there
    assert failed == [r["dynamodb"]["SequenceNumber"] for r in records if int(r["dynamodb"]["SequenceNumber"]) >= int(broken)]
    # The handlers that did not fail applied every record, the ones after the broken one too.
    assert fleet_summary(minutes=5).total("turns") == 4
    assert sorted(e["seq"] for e in activity_recent(limit=20) if e["kind"] == "turn") == [1, 2, 3, 4]

    # Lambda's retry from the failed record, once the record can be applied: nothing counted twice.
    monkeypatch.delenv("PROBE_FAIL_SEQ")
    retry = [r for r in records if int(r["dynamodb"]["SequenceNumber"]) >= int(broken)]
    assert lambda_handler(lambda_event(retry, stream), None) == {"batchItemFailures": []}
    assert fleet_summary(minutes=5).total("turns") == 4
