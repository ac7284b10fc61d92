"""Shard order and the Streams API's failure answers. DynamoDB Local keeps one open shard per
stream and never trims, so the shard graph (a parent and its child), trimmed checkpoints and
expired iterators are played by botocore's Stubber on the real streams client, answering with
real records read from DynamoDB Local's stream; the lease table is the real one."""

from __future__ import annotations

import logging
import time

import pytest
from botocore.stub import Stubber

from sessions_app import dynamo
from sessions_app.realtime import stream_progress
from sessions_app.services import session_start
from sessions_app.services.turns import turn_append
from sessions_app.streams.consumer import shards_ready
from sessions_app.streams.leases import SHARD_END, Lease, LeaseTable

from .conftest import drain, make_consumer, stream_records

PARENT, CHILD = "shardId-00000001796204237633-parent01", "shardId-00000001796204299999-child001"


class Recorder:
    def __init__(self):
        self.seen: list[tuple[str, str]] = []

    def __call__(self, changes):
        self.seen += [(c.shard_id, c.seq) for c in changes]


def _records(arn: str, n_turns: int) -> list[dict]:
    """Real records of one session's start and ``n_turns`` appends, read from DynamoDB Local."""
    meta, _ = session_start(customer_id="cust-s", channel="web")
    for i in range(1, n_turns + 1):
        turn_append(session_id=meta.session_id, role="user", text=f"t{i}", client_msg_id=f"m{i}")
    return stream_records(arn)


@pytest.fixture
def arn(stream):
    return stream


@pytest.fixture
def streams_stub():
    stub = Stubber(dynamo.streams_client())
    stub.activate()
    yield stub
    stub.deactivate()


def _describe(stub, arn, shards):
    """Two DescribeStream pages (the consumer must follow LastEvaluatedShardId)."""
    first, rest = shards[:1], shards[1:]
    stub.add_response("describe_stream", {"StreamDescription": {
        "StreamArn": arn, "StreamStatus": "ENABLED", "Shards": first,
        **({"LastEvaluatedShardId": first[-1]["ShardId"]} if rest else {})}}, {"StreamArn": arn, "Limit": 100})
    if rest:
        stub.add_response("describe_stream", {"StreamDescription": {"StreamArn": arn, "StreamStatus": "ENABLED",
                                                                    "Shards": rest}},
                          {"StreamArn": arn, "Limit": 100, "ExclusiveStartShardId": first[-1]["ShardId"]})


def test_a_child_shard_is_read_only_after_its_parent_is_finished(arn, redis_client, streams_stub):
    streams_stub.deactivate()  # the real stream, to have real records to answer with
    records = _records(arn, 4)
    streams_stub.activate()
    to_parent, to_child = records[:6], records[6:]
    graph = [
        {"ShardId": PARENT, "SequenceNumberRange": {"StartingSequenceNumber": to_parent[0]["dynamodb"]["SequenceNumber"],
                                                    "EndingSequenceNumber": to_parent[-1]["dynamodb"]["SequenceNumber"]}},
        {"ShardId": CHILD, "ParentShardId": PARENT,
         "SequenceNumberRange": {"StartingSequenceNumber": to_child[0]["dynamodb"]["SequenceNumber"]}},
    ]
    recorder = Recorder()
    consumer = make_consumer(arn, handlers=[recorder])

    _describe(streams_stub, arn, graph)
    streams_stub.add_response("get_shard_iterator", {"ShardIterator": "it-parent"},
                              {"StreamArn": arn, "ShardId": PARENT, "ShardIteratorType": "TRIM_HORIZON"})
    streams_stub.add_response("get_records", {"Records": to_parent}, {"ShardIterator": "it-parent", "Limit": 500})
    consumer.step()
    leases = {lease.shard_id: lease for lease in LeaseTable(stream_arn=arn).list()}
    assert leases[PARENT].checkpoint == SHARD_END and leases[CHILD].owner is None  # the child waited
    assert {shard for shard, _ in recorder.seen} == {PARENT}

    _describe(streams_stub, arn, graph)
    streams_stub.add_response("get_shard_iterator", {"ShardIterator": "it-child"},
                              {"StreamArn": arn, "ShardId": CHILD, "ShardIteratorType": "TRIM_HORIZON"})
    streams_stub.add_response("get_records", {"Records": to_child, "NextShardIterator": "it-child-2"},
                              {"ShardIterator": "it-child", "Limit": 500})
    consumer.step()
    streams_stub.assert_no_pending_responses()
    assert [shard for shard, _ in recorder.seen] == [PARENT] * len(to_parent) + [CHILD] * len(to_child)
    assert [seq for _, seq in recorder.seen] == [r["dynamodb"]["SequenceNumber"] for r in records]
    assert LeaseTable(stream_arn=arn).list()[1].checkpoint == to_child[-1]["dynamodb"]["SequenceNumber"]


def _lease(shard_id, parent=None, checkpoint=None):
    return Lease(shard_id=shard_id, parent_id=parent, owner=None, counter=0, expires_ms=0, checkpoint=checkpoint,
                 checkpoint_at=None)


def test_shards_ready_orders_the_graph():
    leases = [_lease("a", checkpoint=SHARD_END), _lease("b", parent="a"), _lease("c", parent="b"),
              _lease("d", parent="gone")]
    # b's parent is finished; c waits for b; d's parent was trimmed away (no longer in the stream).
    assert [lease.shard_id for lease in shards_ready(leases, {"a", "b", "c", "d"})] == ["b", "d"]
    assert [lease.shard_id for lease in shards_ready(leases[:2], {"a", "b"})] == ["b"]


def test_a_checkpoint_older_than_the_stream_is_reported_loudly_and_reading_resumes_at_the_trim_horizon(
        arn, redis_client, streams_stub, caplog):
    streams_stub.deactivate()
    records = _records(arn, 3)
    real = dynamo.streams_client().describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    shard_id = real[0]["ShardId"]
    LeaseTable(stream_arn=arn).add(shard_id=shard_id, parent_id=None)
    table = LeaseTable(stream_arn=arn)
    lease = table.take(table.list()[0], owner="old", seconds=0.001)
    old_checkpoint = str(int(records[0]["dynamodb"]["SequenceNumber"]) - 5).zfill(21)
    table.renew(lease, owner="old", seconds=0.001, checkpoint=old_checkpoint)
    streams_stub.activate()

    consumer = make_consumer(arn)
    _describe(streams_stub, arn, [{"ShardId": shard_id, "SequenceNumberRange": {"StartingSequenceNumber": "1".zfill(21)}}])
    streams_stub.add_client_error("get_shard_iterator", service_error_code="TrimmedDataAccessException",
                                  service_message="trimmed", expected_params={
                                      "StreamArn": arn, "ShardId": shard_id, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
                                      "SequenceNumber": old_checkpoint})
    streams_stub.add_response("get_shard_iterator", {"ShardIterator": "it"},
                              {"StreamArn": arn, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"})
    streams_stub.add_response("get_records", {"Records": records, "NextShardIterator": "it-2"},
                              {"ShardIterator": "it", "Limit": 500})
    time.sleep(0.01)  # the old owner's lease (1 ms) has expired
    with caplog.at_level(logging.ERROR, logger="sessions_app.streams"):
        consumer.step()
    streams_stub.assert_no_pending_responses()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("older than the stream keeps (24 h)" in m for m in errors)
    assert any("up to 4 changes were missed" in m for m in errors)
    assert "changes were missed" in stream_progress(seconds=60).last_error["message"]
    assert consumer.held[shard_id].checkpoint == records[-1]["dynamodb"]["SequenceNumber"]


def test_an_expired_iterator_is_replaced_from_the_checkpoint(arn, redis_client, streams_stub):
    streams_stub.deactivate()
    records = _records(arn, 2)
    consumer = make_consumer(arn)
    drain(consumer)
    checkpoint = records[-1]["dynamodb"]["SequenceNumber"]
    assert next(iter(consumer.held.values())).checkpoint == checkpoint
    shard_id = next(iter(consumer.held))
    streams_stub.activate()
    held = consumer.held[shard_id]
    held.iterator = "stale"
    consumer._next_discovery = consumer._next_renewal = float("inf")
    streams_stub.add_client_error("get_records", service_error_code="ExpiredIteratorException",
                                  service_message="expired", expected_params={"ShardIterator": "stale", "Limit": 500})
    streams_stub.add_response("get_shard_iterator", {"ShardIterator": "fresh"}, {
        "StreamArn": arn, "ShardId": shard_id, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": checkpoint})
    streams_stub.add_response("get_records", {"Records": [], "NextShardIterator": "fresh-2"},
                              {"ShardIterator": "fresh", "Limit": 500})
    consumer.step()
    consumer.step()
    streams_stub.assert_no_pending_responses()
    assert held.iterator == "fresh-2"


def test_throttling_backs_off_the_shard_instead_of_failing(arn, redis_client, streams_stub):
    streams_stub.deactivate()
    _records(arn, 1)
    consumer = make_consumer(arn)
    drain(consumer)
    shard_id = next(iter(consumer.held))
    held = consumer.held[shard_id]
    held.iterator = "it"
    consumer._next_discovery = consumer._next_renewal = float("inf")
    streams_stub.activate()
    streams_stub.add_client_error("get_records", service_error_code="LimitExceededException", service_message="slow down",
                                  expected_params={"ShardIterator": "it", "Limit": 500})
    assert consumer.step() is False
    streams_stub.assert_no_pending_responses()
    assert held.backoff > 0 and held.iterator == "it"
    assert consumer.step() is False  # backing off: no call made (the Stubber has no answer queued)
