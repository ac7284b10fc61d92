"""The consumer's bookkeeping against the real stream and lease table: checkpoints, leases,
graceful stop, restart, and a record that keeps failing."""

from __future__ import annotations

import time

from sessions_app.realtime import stream_progress
from sessions_app.selectors.stream import fleet_summary, stream_status
from sessions_app.services import session_start
from sessions_app.services.turns import turn_append
from sessions_app.streams.dispatch import handlers_from_settings
from sessions_app.streams.leases import LeaseTable

from .conftest import drain, make_consumer


def _appends(n: int, *, start_at: int = 1) -> str:
    meta, _ = session_start(customer_id="cust-c", channel="app")
    for i in range(start_at, start_at + n):
        turn_append(session_id=meta.session_id, role="user", text=f"t{i}", client_msg_id=f"m{i}")
    return meta.session_id


class Recorder:
    def __init__(self, fail_on=None):
        self.seen: list[str] = []
        self.fail_on = fail_on
        self.calls = 0

    def __call__(self, changes):
        self.calls += 1
        if self.fail_on and self.fail_on(changes):
            raise ValueError("this record is broken")
        self.seen += [c.seq for c in changes]


def test_a_restarted_consumer_resumes_after_its_checkpoint(stream, redis_client):
    _appends(3)
    first = Recorder()
    consumer = make_consumer(stream, name="a", handlers=[*handlers_from_settings(), first])
    drain(consumer)
    consumer.release_all()
    lease = LeaseTable(stream_arn=stream).list()[0]
    assert lease.owner is None and lease.checkpoint == first.seen[-1]

    _appends(2)
    second = Recorder()
    restarted = make_consumer(stream, name="b", handlers=[*handlers_from_settings(), second])
    drain(restarted)
    assert second.seen and int(second.seen[0]) > int(first.seen[-1])  # nothing read twice
    assert fleet_summary(minutes=5).total("turns") == 5
    progress = stream_progress(seconds=60)
    assert progress.records == len(first.seen) + len(second.seen)
    assert progress.origins == {"app": progress.records}


def test_one_consumer_holds_a_shard_the_other_waits_and_takes_over_after_expiry(stream, redis_client, settings):
    _appends(1)
    a, b = make_consumer(stream, name="a"), make_consumer(stream, name="b")
    drain(a)
    b.step()
    assert list(a.held) and not b.held  # the lease is a's
    lease = LeaseTable(stream_arn=stream).list()[0]
    assert lease.owner == "a"
    # a dies without releasing; b takes over only once the lease has expired on b's clock.
    while time.time() * 1000 <= lease.expires_ms:
        b._next_renewal = 0
        b.step()
        if b.held:  # on a slow box the expiry may pass during the step itself
            break
        time.sleep(0.2)
    b._next_renewal = 0
    drain(b, until=lambda: bool(b.held))
    taken = LeaseTable(stream_arn=stream).list()[0]
    assert taken.owner == "b"
    # The take itself wrote the new expiry (take time + lease duration): it came after a's expired.
    assert taken.expires_ms - settings.STREAM_LEASE_SECONDS * 1000 >= lease.expires_ms
    # a finds out at its next write that the lease is gone, and stops reading the shard.
    a._next_renewal = 0
    a.step()
    assert not a.held


def test_graceful_stop_checkpoints_and_releases(stream, redis_client):
    _appends(2)
    consumer = make_consumer(stream, name="g")
    drain(consumer)
    consumer.stop()
    consumer.run()  # returns at once: stop was asked for; releases on the way out
    status = stream_status()
    assert status.leases_held == [] and status.leases[0].checkpoint is not None


def test_a_record_a_handler_keeps_failing_on_is_retried_then_skipped_and_said(stream, redis_client, settings):
    settings.STREAM_MAX_ATTEMPTS = 3
    _appends(2)

    def broken(changes):
        return any(c.kind == "INSERT" and c.item_type == "turn" and c.image.get("seq") == 2 for c in changes)

    recorder = Recorder(fail_on=broken)
    consumer = make_consumer(stream, name="p", handlers=[*handlers_from_settings(), recorder])
    for _ in range(40):
        consumer.step()
        for held in consumer.held.values():
            held.backoff_until = 0  # no need to wait out the backoff in a test
        if consumer.stats.skipped:
            break
    assert consumer.stats.skipped == 1
    drain(consumer)
    status = stream_status()
    assert "after 3 attempts" in status.progress.last_error["message"]
    # The other handlers applied the broken record too: both turns were counted, once each.
    assert fleet_summary(minutes=5).total("turns") == 2


def test_a_checkpoint_from_a_lost_lease_is_refused(stream, redis_client):
    _appends(1)
    consumer = make_consumer(stream, name="x")
    drain(consumer)
    table = LeaseTable(stream_arn=stream)
    stolen = table.list()[0]
    # Someone else took it (as after an expiry): the counter moved on.
    table._client.update_item(TableName=table.table_name, Key=table._key(stolen.shard_id),
                              UpdateExpression="SET #o = :o, #c = #c + :one",
                              ExpressionAttributeNames={"#o": "owner", "#c": "counter"},
                              ExpressionAttributeValues={":o": {"S": "y"}, ":one": {"N": "1"}})
    _appends(1)
    consumer.step()
    assert not consumer.held
    assert table.list()[0].owner == "y"


def test_status_prints_shards_leases_checkpoints_and_lag(stream, redis_client, capsys):
    from django.core.management import call_command

    _appends(2)
    consumer = make_consumer(stream, name="status-1")
    drain(consumer)
    call_command("stream_consume", "--status")
    out = capsys.readouterr().out
    lease = LeaseTable(stream_arn=stream).list()[0]
    assert f"stream {stream}" in out
    assert "1 shards, 1 leases held by 1 consumers" in out
    assert f"{lease.shard_id}" in out and "held by status-1" in out and f"checkpoint {lease.checkpoint}" in out
    assert f"last 60s: {consumer.stats.records} records" in out and "lag p50" in out
