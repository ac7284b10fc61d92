"""Consumers as real processes (``manage.py stream_consume``): SIGKILL in the middle of a batch,
two consumers on one stream, and fleet counters fed by appends from several processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

from django.conf import settings

from sessions_app.realtime import activity_recent
from sessions_app.selectors.stream import fleet_summary
from sessions_app.services import session_start
from sessions_app.services.turns import turn_append
from sessions_app.streams.leases import LeaseTable
from tests.fixtures.celery_workers import wait_for

from . import probe
from .conftest import ROOT, drain, make_consumer, stream_records


def _appends(session_id: str, seqs) -> None:
    for i in seqs:
        turn_append(session_id=session_id, role="user", text=f"t{i}", client_msg_id=f"m{i}")


def _all_applied(client, arn) -> bool:
    """The probe (the last handler) has applied every record the stream holds."""
    applied = {s for row in probe.applied(client) for s in row["seqs"]}
    return applied >= {r["dynamodb"]["SequenceNumber"] for r in stream_records(arn)}


def _lease(arn):
    leases = LeaseTable(stream_arn=arn).list()
    return leases[0] if leases else None


def test_sigkill_in_the_middle_of_a_batch_loses_nothing_and_duplicates_show_nowhere(consumer_procs, stream, redis_client):
    meta, _ = session_start(customer_id="cust-k", channel="line")
    _appends(meta.session_id, range(1, 31))
    total = len(stream_records(stream))  # 1 META insert + 30 × (turn, marker, META update)
    # Slow batches of 10 records: the kill lands while a batch is being applied.
    first = consumer_procs.start("first", STREAM_BATCH_SIZE="10", PROBE_BATCH_SECONDS="0.4")
    wait_for(lambda: len(probe.applied(redis_client)) >= 3, timeout=60, what="the first consumer's batches")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    done_before = {s for row in probe.applied(redis_client) for s in row["seqs"]}
    assert 0 < len(done_before) < total

    consumer_procs.start("second", STREAM_BATCH_SIZE="10")
    wait_for(lambda: _all_applied(redis_client, stream), timeout=60, what="every record applied")
    wait_for(lambda: _lease(stream).checkpoint == stream_records(stream)[-1]["dynamodb"]["SequenceNumber"],
             timeout=30, what="the final checkpoint")
    # At least once: the batch the kill interrupted ran again. Exactly once in effect:
    fleet = fleet_summary(minutes=10)
    assert fleet.total("turns") == 30 and fleet.by_channel("started")["line"] == 1
    events = activity_recent(limit=200)
    assert len(events) == 31 and len({e["id"] for e in events}) == 31
    assert sorted(e["seq"] for e in events if e["kind"] == "turn") == list(range(1, 31))


def test_two_consumers_never_hold_one_shard_at_once_and_the_survivor_takes_over(consumer_procs, stream, redis_client):
    meta, _ = session_start(customer_id="cust-two", channel="web")
    a = consumer_procs.start("a", PROBE_BATCH_SECONDS="0.05")
    b = consumer_procs.start("b", PROBE_BATCH_SECONDS="0.05")
    _appends(meta.session_id, range(1, 11))
    wait_for(lambda: _lease(stream) is not None and _lease(stream).owner in ("a", "b"), timeout=60,
             what="a lease taken")
    holder = _lease(stream).owner
    wait_for(lambda: _all_applied(redis_client, stream), timeout=60, what="every record applied")
    before = probe.applied(redis_client)
    assert len({row["pid"] for row in before}) == 1  # one consumer read the shard, the other waited

    dead, survivor = (a, b) if holder == "a" else (b, a)
    dead.send_signal(signal.SIGKILL)
    dead.wait(10)
    expired_at = _lease(stream).expires_ms / 1000
    _appends(meta.session_id, range(11, 16))
    wait_for(lambda: _lease(stream).owner == ("b" if holder == "a" else "a"), timeout=60, what="the takeover")
    wait_for(lambda: _all_applied(redis_client, stream), timeout=60, what="the survivor's batches")
    assert fleet_summary(minutes=10).total("turns") == 15
    after = [row for row in probe.applied(redis_client) if row["pid"] == survivor.pid]
    assert after
    # Never both at once: the survivor's first batch started after the dead one's lease expired,
    # and after every batch the dead one had begun.
    assert min(row["start"] for row in after) >= expired_at
    assert min(row["start"] for row in after) >= max(row["end"] for row in before)


_APPENDER = textwrap.dedent("""
    import django, os, sys
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mangaassist.settings")
    django.setup()
    from sessions_app.services import session_start
    from sessions_app.services.turns import turn_append
    meta, _ = session_start(customer_id="cust-p" + sys.argv[1], channel="app")
    for i in range(int(sys.argv[2])):
        turn_append(session_id=meta.session_id, role="user", text=f"t{i}", client_msg_id=f"m{i}")
""")


def test_fleet_counters_equal_the_appends_of_several_processes(stream, redis_client):
    env = dict(os.environ, DYNAMODB_TABLE=settings.DYNAMODB_TABLE, DYNAMODB_ENDPOINT=settings.DYNAMODB_ENDPOINT,
               REDIS_URL=settings.CACHES["default"]["LOCATION"], DAX_ENDPOINTS="", MANGAASSIST_ENV="local",
               SUMMARY_EVERY_N_TURNS="1000")
    writers = [subprocess.Popen([sys.executable, "-c", _APPENDER, str(n), "12"], cwd=ROOT, env=env) for n in range(3)]
    meta, _ = session_start(customer_id="cust-here", channel="web")
    _appends(meta.session_id, range(1, 8))
    assert [w.wait(120) for w in writers] == [0, 0, 0]
    consumer = make_consumer(stream)
    drain(consumer)
    fleet = fleet_summary(minutes=10)
    assert fleet.total("turns") == 3 * 12 + 7
    assert fleet.by_channel("started") == {"web": 1, "app": 3, "line": 0, "email": 0, "voice": 0}
