"""Cluster mode (``REDIS_CLUSTER=1``, ElastiCache with cluster mode enabled) against a real Redis
Cluster of 3 primaries that this test session starts from ``redis-server --cluster-enabled yes``.

The server itself refuses a script, transaction or multi-key command whose keys span slots
(CROSSSLOT), so every function running here is the proof that it keeps to one slot per call; a
recording test also checks each script's keys with ``redis.crc.key_slot`` and that every script of
the package ran. The same scenario run against the single test Redis and the cluster must give the
same results.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis
from redis import exceptions as rx
from redis.cluster import RedisCluster
from redis.crc import key_slot

from devtools import procs
from sessions_app.exceptions import RedisUnavailable, SessionLocked
from sessions_app.realtime import (
    FleetCount,
    activity_forget_session,
    activity_recent,
    change_events_publish,
    connection_delete,
    connection_get,
    connection_put,
    connections_for_session,
    context_cache_external_change,
    context_cache_get,
    context_cache_hint_raise,
    context_cache_hit_ratio,
    context_cache_invalidate,
    context_cache_put,
    context_cache_stats,
    context_cache_turn_written,
    degraded_events,
    degraded_events_reset,
    fleet_count,
    fleet_stats,
    keys,
    presence_clear,
    presence_get,
    presence_get_many,
    presence_heartbeat,
    presence_online,
    presence_online_count,
    rate_limit_hit,
    rate_limit_peek,
    rate_limit_stats,
    realtime_forget_session,
    realtime_keys_for_session,
    realtime_session_gone,
    redis_boundary,
    redis_connection,
    session_write_lock,
    staff_viewing,
    staff_viewing_ping,
    stream_error_record,
    stream_progress,
    stream_progress_record,
    summary_lock_acquire,
    summary_lock_release,
)
from sessions_app.realtime import client as realtime_client
from sessions_app.realtime.client import LuaScript
from sessions_app.realtime.privacy import realtime_forget_customer, realtime_keys_for_customer
from sessions_app.realtime.subscriptions import (
    activity_after,
    activity_channel,
    async_redis,
    async_redis_close,
    events_subscribe,
    session_channel,
)

from .conftest import Cluster, cluster_mode, new_cluster
from .test_redis_down import _assert_everything_degrades, _assert_everything_works

ROOT = Path(__file__).resolve().parents[2]


def _run_in_own_loop(coroutine):
    """``asyncio.run`` on a thread of its own: the browser tests' Playwright (sync API) leaves an
    event loop running on the main thread for the rest of the session, and asyncio.run refuses
    to start inside a running loop."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def _slot_owner(client: RedisCluster, key: str) -> str:
    return client.get_node_from_key(key).name


# --- the client ---------------------------------------------------------------------------------

def test_the_connection_is_a_redis_cluster_built_from_the_cache_settings(cluster, settings):
    client = redis_connection()
    assert isinstance(client, RedisCluster)
    assert redis_connection() is client  # cached per process
    assert len(client.get_primaries()) == 3
    options = settings.CACHES["default"]["OPTIONS"]
    node = client.get_primaries()[0].redis_connection.connection_pool
    assert node.connection_kwargs["socket_timeout"] == options["SOCKET_TIMEOUT"]
    assert node.connection_kwargs["socket_connect_timeout"] == options["SOCKET_CONNECT_TIMEOUT"]
    assert node.max_connections == options["CONNECTION_POOL_KWARGS"]["max_connections"]
    assert client.retry.get_retries() == 0  # one attempt per call, as on a single Redis
    assert client.ping()


def test_everything_works_on_a_cluster_and_the_keys_spread_over_its_nodes(cluster):
    _assert_everything_works()
    owners = {_slot_owner(cluster, k.decode()) for k in cluster.keys(target_nodes=RedisCluster.PRIMARIES)}
    assert len(owners) >= 2
    assert degraded_events() == {}


# --- one slot per script, and every script runs -------------------------------------------------

def _every_script() -> dict[int, str]:
    """id(LuaScript) → "module.name" for every script of the package."""
    import sessions_app.realtime as package

    found = {}
    for path in sorted(Path(package.__file__).parent.glob("*.py")):
        module = __import__(f"sessions_app.realtime.{path.stem}", fromlist=["_"])
        for name, value in vars(module).items():
            if isinstance(value, LuaScript):
                found[id(value)] = f"{path.stem}.{name}"
    return found


# Scripts that never run on a cluster: the single-Redis form of the fleet counter (its keys span
# slots by design) and the rate limiter's test-only twin with a pinned clock (run below anyway).
_SINGLE_REDIS_ONLY = {"fleet._count_script"}


def _exercise_everything() -> None:
    from sessions_app.realtime.ratelimit import _rate_limit_hit_at

    rate_limit_hit(customer_id="cust", limit=1, window_seconds=60)
    rate_limit_hit(customer_id="cust", limit=1, window_seconds=60)
    _rate_limit_hit_at(customer_id="cust2", now_us=1_000_000, limit=2, window_seconds=60)
    rate_limit_peek(customer_id="cust")
    rate_limit_stats()
    context_cache_get(session_id="s1", variant="t20")
    context_cache_turn_written(session_id="s1", seq=3)
    context_cache_put(session_id="s1", variant="t20", seq=3, payload=b"ctx")
    context_cache_get(session_id="s1", variant="t20", min_seq=2)
    context_cache_hint_raise(session_id="s1", seq=4)
    context_cache_external_change(session_id="s1", seq=5, dax_stale_seconds=1)
    context_cache_invalidate(session_id="s1")
    context_cache_hit_ratio()
    with session_write_lock(session_id="s1"):
        pass
    summary_lock_acquire(session_id="s1", token="t1", ttl_seconds=30)
    summary_lock_acquire(session_id="s1", token="t2", ttl_seconds=30)
    summary_lock_release(session_id="s1", token="t1")
    presence_heartbeat(session_id="s1", connection_id="c1")
    presence_heartbeat(session_id="s2")
    presence_get_many(session_ids=["s1", "s2", "s3"])
    presence_online()
    presence_online_count()
    staff_viewing_ping(session_id="s1", username="sam")
    staff_viewing(session_id="s1")
    connection_put(connection_id="c1", session_id="s1")
    connections_for_session(session_id="s1")
    fleet_count(counts=[FleetCount("s1", "turn", 1, "max", "turns", 1_700_000_000.0),
                        FleetCount("s2", "started", 1, "once", "started:web", 1_700_000_000.0)])
    fleet_stats(fields=["turns"])
    stream_progress_record(lags_ms=[5.0, 7.0], origins=["app", "ttl"])
    stream_progress()
    change_events_publish(events=[_event("1", session_id="s1")])
    realtime_keys_for_session(session_id="s1", customer_id="cust")
    realtime_session_gone(session_id="s2")
    realtime_forget_session(session_id="s1", customer_id="cust")
    presence_clear(session_id="s1")
    connection_delete(connection_id="c1")


def test_every_script_touches_one_slot_and_every_script_runs(cluster, monkeypatch):
    calls: list[tuple[str, list[str]]] = []
    names = _every_script()
    real_call = LuaScript.__call__

    def recording(self, *, keys, args):
        calls.append((names.get(id(self), repr(self)), list(keys)))
        return real_call(self, keys=keys, args=args)

    monkeypatch.setattr(LuaScript, "__call__", recording)
    _exercise_everything()
    for name, script_keys in calls:
        slots = {key_slot(k.encode()) for k in script_keys}
        assert len(slots) <= 1, f"{name} touches {script_keys} in slots {slots}"
    assert set(names.values()) - _SINGLE_REDIS_ONLY <= {name for name, _ in calls}
    assert degraded_events() == {}


def test_keys_used_together_share_a_hash_tag():
    # The one pair that one script writes together, for any bucket.
    for bucket in (0, 10, 1_700_000_000, 1_700_000_010):
        assert key_slot(keys.stream_progress_key(bucket=bucket).encode()) == \
            key_slot(keys.stream_lag_samples_key(bucket=bucket).encode())
    # ... and successive buckets move on, instead of piling every bucket onto one slot.
    assert len({key_slot(keys.stream_progress_key(bucket=b).encode()) for b in range(0, 600, 10)}) > 30


def test_single_redis_scripts_keep_their_stats_in_the_same_round_trip(rt, monkeypatch):
    # Cluster mode splits; a single Redis keeps the one-round-trip, one-script form.
    calls: list[tuple[str, list[str]]] = []
    names = _every_script()
    real_call = LuaScript.__call__

    def recording(self, *, keys, args):
        calls.append((names.get(id(self), repr(self)), list(keys)))
        return real_call(self, keys=keys, args=args)

    monkeypatch.setattr(LuaScript, "__call__", recording)
    rate_limit_hit(customer_id="c", limit=5, window_seconds=60)
    context_cache_get(session_id="s1", variant="t20")
    fleet_count(counts=[FleetCount("s1", "turn", 1, "max", "turns", 1_700_000_000.0)])
    presence_heartbeat(session_id="s1", connection_id="k1")
    assert [(name, len(k)) for name, k in calls] == [
        ("ratelimit._hit_script", 2), ("context_cache._get_script", 2), ("fleet._count_script", 2),
        ("presence._heartbeat_script", 2)]


# --- same results as a single Redis -------------------------------------------------------------

def _event(id: str, *, session_id: str = "s-1", kind: str = "turn", seq: int = 1) -> dict:
    return {"id": id, "session_id": session_id, "kind": kind, "seq": seq, "at": "2026-01-01T00:00:00.000000Z",
            "at_ms": 1767225600000 + int(id)}


def _scenario() -> dict:
    """Every function once or more, the results with the timing-dependent parts left out."""
    out: dict = {}
    out["rate"] = [(d.allowed, d.remaining) for d in (rate_limit_hit(customer_id="c", limit=2, window_seconds=60)
                                                      for _ in range(3))]
    peek = rate_limit_peek(customer_id="c", limit=2, window_seconds=60)
    out["peek"] = (peek.allowed, peek.remaining)
    out["rate_stats"] = (sum(m.allowed for m in rate_limit_stats()), sum(m.denied for m in rate_limit_stats()))

    miss = context_cache_get(session_id="s1", variant="t20")
    context_cache_turn_written(session_id="s1", seq=4)
    stale_put = context_cache_put(session_id="s1", variant="t20", seq=3, payload=b"old")
    fresh_put = context_cache_put(session_id="s1", variant="t20", seq=4, payload=b"new")
    hit = context_cache_get(session_id="s1", variant="t20")
    behind = context_cache_get(session_id="s1", variant="t20", min_seq=5)
    context_cache_external_change(session_id="s1", seq=6, dax_stale_seconds=30)
    after_change = context_cache_get(session_id="s1", variant="t20")
    out["ctx"] = [(miss.payload, miss.hint), stale_put, fresh_put, (hit.payload, hit.hint), behind.payload,
                  (after_change.payload, after_change.hint, after_change.consistent)]
    out["ctx_stats"] = (sum(m.hits for m in context_cache_stats()), sum(m.misses for m in context_cache_stats()))
    out["ctx_ratio"] = context_cache_hit_ratio()

    with session_write_lock(session_id="s1") as lock:
        out["lock"] = lock.held
    out["summary_lock"] = [summary_lock_acquire(session_id="s1", token="a", ttl_seconds=30),
                           summary_lock_acquire(session_id="s1", token="b", ttl_seconds=30),
                           summary_lock_release(session_id="s1", token="a")]

    presence_heartbeat(session_id="s1", connection_id="k1")
    presence_heartbeat(session_id="s2")
    many = presence_get_many(session_ids=["s1", "s2", "s3"])
    out["presence"] = {i: (p.state, p.connection_id) for i, p in many.items()}
    out["online"] = (sorted(presence_online()), presence_online_count())
    presence_clear(session_id="s2")
    out["cleared"] = presence_get(session_id="s2").state

    connection_put(connection_id="k1", session_id="s1")
    connection_put(connection_id="k2", session_id="s1")
    connection_put(connection_id="k2", session_id="s9")  # rebound
    out["conn"] = (connections_for_session(session_id="s1"), connections_for_session(session_id="s9"),
                   connection_get(connection_id="k2"), connection_delete(connection_id="k2"),
                   connection_delete(connection_id="k2"))

    at = 1_700_000_040.0  # a minute's start
    batch = [FleetCount("s1", "turn", 3, "max", "turns", at), FleetCount("s1", "turn", 4, "max", "turns", at),
             FleetCount("s1", "turn", 2, "max", "turns", at), FleetCount("s1", "started", 1, "once", "started:web", at),
             FleetCount("s2", "started", 1, "once", "started:line", at + 60)]
    out["fleet"] = [fleet_count(counts=batch), fleet_count(counts=batch),
                    fleet_count(counts=[FleetCount("s1", "turn", 5, "max", "turns", at)])]
    # fleet_stats reads the last minutes of now; read the test's own minutes directly.
    minutes = (keys.stats_bucket(epoch_seconds=at), keys.stats_bucket(epoch_seconds=at + 60))
    out["fleet_minutes"] = dict(sorted((f"{b}:{f.decode()}", int(n)) for b in minutes
                                       for f, n in redis_connection().hgetall(keys.fleet_key(bucket=b)).items()))

    stream_progress_record(lags_ms=[10.0, 30.0], origins=["app", "app"], now=1_000.0)
    stream_progress_record(lags_ms=[20.0], origins=["ttl"], now=1_005.0)
    stream_error_record(consumer="c1", shard="sh", message="boom", now=1_006.0)
    progress = stream_progress(seconds=10, now=1_009.0)
    out["stream"] = (progress.records, progress.batches, progress.lag_p50_ms, progress.lag_max_ms, progress.origins,
                     progress.last_error["message"])

    staff_viewing_ping(session_id="s1", username="sam")
    out["staff"] = [v.username for v in staff_viewing(session_id="s1")]

    change_events_publish(events=[_event("7", session_id="s1"), _event("8", session_id="s2")])
    out["activity"] = [e["id"] for e in activity_recent()]
    out["activity_forgotten"] = activity_forget_session(session_id="s2")

    out["keys"] = sorted(realtime_keys_for_session(session_id="s1", customer_id="c"))
    out["customer_keys"] = realtime_keys_for_customer(customer_id="c")
    out["gone"] = realtime_session_gone(session_id="s9")
    out["forgotten"] = realtime_forget_session(session_id="s1", customer_id="c")
    out["forgotten_customer"] = realtime_forget_customer(customer_id="c")
    out["left"] = realtime_keys_for_session(session_id="s1", customer_id="c")
    return out


def test_the_same_scenario_gives_the_same_results_on_a_single_redis_and_on_a_cluster(rt, redis_cluster, settings):
    single = _scenario()
    assert degraded_events() == {}
    client = RedisCluster.from_url(redis_cluster.url)
    client.flushall()
    try:
        with cluster_mode(redis_cluster.url, settings):
            clustered = _scenario()
    finally:
        client.flushall()
        client.close()
    assert degraded_events() == {}
    assert clustered == single
    # A few of the expectations, so that "equal" is not "equally wrong".
    assert single["rate"] == [(True, 1), (True, 0), (False, 0)] and single["rate_stats"] == (2, 1)
    assert single["ctx"][:5] == [(None, None), False, True, (b"new", 4), None]
    assert single["fleet"] == [4, 0, 1]
    assert single["fleet_minutes"] == {"1700000040:started:web": 1, "1700000040:turns": 3,
                                       "1700000100:started:line": 1}
    assert single["conn"] == (["k1"], ["k2"], "s9", True, False)
    assert single["left"] == []


# --- the pieces, on the cluster -------------------------------------------------------------------

def test_rate_limit_counts_exactly_and_the_graph_counts_each_decision(cluster):
    decisions = [rate_limit_hit(customer_id="c", limit=3, window_seconds=60) for _ in range(5)]
    assert [d.allowed for d in decisions] == [True, True, True, False, False]
    assert decisions[-1].retry_after > 0 and not any(d.degraded for d in decisions)
    assert cluster.zcard(keys.rate_key(customer_id="c")) == 3
    assert rate_limit_peek(customer_id="c", limit=3).remaining == 0
    stats = rate_limit_stats(minutes=2)
    assert (sum(m.allowed for m in stats), sum(m.denied for m in stats)) == (3, 2)


def test_the_fleet_counters_count_each_record_once_per_session(cluster):
    at = 1_700_000_000.0
    sessions = [f"s{i}" for i in range(12)]  # over all three nodes
    assert len({_slot_owner(cluster, keys.fleet_seen_key(session_id=s)) for s in sessions}) == 3
    batch = [FleetCount(s, "turn", seq, "max", "turns", at) for s in sessions for seq in (1, 2)]
    assert fleet_count(counts=batch) == 24
    assert fleet_count(counts=batch) == 0  # redelivered: nothing
    assert fleet_count(counts=[FleetCount("s0", "turn", 2, "max", "turns", at),
                               FleetCount("s0", "turn", 3, "max", "turns", at)]) == 1
    assert int(cluster.hget(keys.fleet_key(bucket=keys.stats_bucket(epoch_seconds=at)), "turns")) == 25
    assert 0 < cluster.ttl(keys.fleet_key(bucket=keys.stats_bucket(epoch_seconds=at))) <= keys.stats_ttl_seconds()
    assert fleet_stats(fields=["turns"], minutes=1)[0].counts == {"turns": 0}  # now's minute: nothing


def test_presence_reads_the_connection_ids_from_their_own_slots(cluster):
    ids = [f"s{i}" for i in range(9)]
    for i in ids:
        presence_heartbeat(session_id=i, connection_id=f"conn-{i}")
    assert len({_slot_owner(cluster, keys.presence_session_key(session_id=i)) for i in ids}) == 3
    many = presence_get_many(session_ids=ids + ["nobody"])
    assert {i: p.connection_id for i, p in many.items() if p.state == "online"} == {i: f"conn-{i}" for i in ids}
    assert many["nobody"].state == "offline"
    presence_heartbeat(session_id="s0")  # keeps the recorded connection alive
    assert presence_get(session_id="s0").connection_id == "conn-s0"
    assert 0 < cluster.ttl(keys.presence_session_key(session_id="s0")) <= keys.presence_ttl_seconds()
    assert presence_clear(session_id="s0") and presence_get(session_id="s0").state == "offline"
    assert presence_online_count() == 8


def test_locks_on_a_cluster(cluster, settings):
    settings.SESSION_LOCK_WAIT = 0.05
    with session_write_lock(session_id="s1") as lock:
        assert lock.held
        with pytest.raises(SessionLocked):
            with session_write_lock(session_id="s1"):
                pass
    assert not cluster.exists(keys.session_lock_key(session_id="s1"))
    assert summary_lock_acquire(session_id="s1", token="a", ttl_seconds=30)
    assert not summary_lock_acquire(session_id="s1", token="b", ttl_seconds=30)
    assert summary_lock_release(session_id="s1", token="a") is True  # someone was refused meanwhile


def test_the_privacy_delete_reaches_every_node(cluster):
    presence_heartbeat(session_id="s1", connection_id="k1")
    for connection in ("k1", "k2", "k3"):
        connection_put(connection_id=connection, session_id="s1")
    context_cache_turn_written(session_id="s1", seq=1)
    rate_limit_hit(customer_id="cust")
    staff_viewing_ping(session_id="s1", username="sam")
    fleet_count(counts=[FleetCount("s1", "turn", 1, "max", "turns", 1_700_000_000.0)])
    found = realtime_keys_for_session(session_id="s1", customer_id="cust")
    assert len({_slot_owner(cluster, k) for k in found}) >= 2
    assert realtime_forget_session(session_id="s1", customer_id="cust") == len(found) + 1  # + its online entry
    assert realtime_keys_for_session(session_id="s1", customer_id="cust") == []
    assert not cluster.exists(keys.presence_session_key(session_id="s1"))


def test_the_session_gone_cleanup_keeps_the_fleet_dedupe(cluster):
    fleet_count(counts=[FleetCount("s1", "turn", 1, "max", "turns", 1_700_000_000.0)])
    context_cache_turn_written(session_id="s1", seq=1)
    presence_heartbeat(session_id="s1", connection_id="k1")
    assert realtime_session_gone(session_id="s1") == 3  # ctx, presence key, online entry
    assert cluster.exists(keys.fleet_seen_key(session_id="s1"))
    assert fleet_count(counts=[FleetCount("s1", "turn", 1, "max", "turns", 1_700_000_000.0)]) == 0


# --- pub/sub ----------------------------------------------------------------------------------------

def _session_on_another_node(client: RedisCluster, avoid: str) -> str:
    for i in range(200):
        candidate = f"s-{i}"
        if client.get_node_from_key(session_channel(session_id=candidate)).name != avoid:
            return candidate
    raise AssertionError("no session channel on another node")


def test_events_published_on_one_node_reach_subscribers_on_the_others(cluster):
    publish_node = _slot_owner(cluster, keys.activity_recent_key())
    session_id = _session_on_another_node(cluster, avoid=publish_node)

    async def run() -> tuple:
        try:
            async with events_subscribe(channel=activity_channel()) as everything, \
                    events_subscribe(channel=session_channel(session_id=session_id)) as mine:
                mine_node = mine._pubsub.get_pubsub_node().name
                await asyncio.to_thread(change_events_publish, events=[_event("21", session_id=session_id),
                                                                        _event("22", session_id="other")])
                got_mine = await mine.next_event(timeout=5)
                got_all = [await everything.next_event(timeout=5), await everything.next_event(timeout=5)]
                nothing_else = await mine.next_event(timeout=0.3)
            backlog = await activity_after(after_id=21)
            return mine_node, got_mine, got_all, nothing_else, backlog
        finally:
            await async_redis_close()

    mine_node, got_mine, got_all, nothing_else, backlog = _run_in_own_loop(run())
    assert mine_node != publish_node  # classic PUBLISH on one node reached a subscriber on another
    assert (got_mine.id, got_mine.fields["session_id"]) == ("21", session_id)
    assert [e.id for e in got_all] == ["21", "22"] and nothing_else is None
    assert [e.id for e in backlog.events] == ["22"] and not backlog.gap
    assert [e["id"] for e in activity_recent()] == ["22", "21"]
    assert activity_forget_session(session_id=session_id) == 1


def test_the_async_client_is_a_cluster_client_with_the_sse_timeouts(cluster, settings):
    async def run():
        try:
            client = async_redis(max_connections=7)
            await client.initialize()
            node = client.get_nodes()[0]
            return type(client).__name__, node.connection_kwargs, node.max_connections, len(client.get_primaries())
        finally:
            await async_redis_close()

    name, kwargs, max_connections, primaries = _run_in_own_loop(run())
    assert (name, max_connections, primaries) == ("RedisCluster", 7, 3)
    assert kwargs["socket_timeout"] == settings.SSE_REDIS_TIMEOUT and kwargs["health_check_interval"] == 30


def test_a_subscription_to_an_unreachable_cluster_is_unavailable(settings):
    with cluster_mode(f"redis://127.0.0.1:{procs.free_port()}/0", settings):
        async def run():
            try:
                async with events_subscribe(channel=activity_channel()):
                    pass
            finally:
                await async_redis_close()

        with pytest.raises(RedisUnavailable):
            _run_in_own_loop(run())


@pytest.fixture
def cluster_sse(cluster, viewer_client, db):
    """The live-updates server (tests/live) on the cluster."""
    from tests.live.conftest import CONSOLE_ORIGIN, _share_connections, _unshare_connections, start_server, stop_server

    from sessions_app.live import EventsApp

    overrides = _share_connections()
    server = start_server(EventsApp(console_origins=[CONSOLE_ORIGIN], keepalive=0.5, retry_ms=1500))
    try:
        yield server, f"sessionid={viewer_client.cookies['sessionid'].value}"
    finally:
        stop_server(server)
        _unshare_connections(overrides)


def test_the_sse_server_streams_and_replays_from_the_cluster(cluster_sse):
    sse, cookie = cluster_sse
    with sse.stream("/events/sessions/s-1", cookie=cookie) as mine, \
            sse.stream("/events/activity", cookie=cookie) as everything:
        mine.wait_comment("subscribed")
        everything.wait_comment("subscribed")
        change_events_publish(events=[_event("31", session_id="s-2"), _event("32", session_id="s-1")])
        assert mine.next().id == "32"
        assert [everything.next().id, everything.next().id] == ["31", "32"]
    # A reconnect with Last-Event-ID replays from activity:recent (on its own node).
    with sse.stream("/events/activity", cookie=cookie, last_event_id="31") as again:
        again.wait_comment("subscribed")
        replayed = again.next()
        assert (replayed.id, json.loads(replayed.data)["session_id"]) == ("32", "s-1")


# --- outages --------------------------------------------------------------------------------------

@pytest.fixture
def own_cluster(infra, settings) -> Iterator[Cluster]:
    """A cluster of this test's own, which it may kill and restart; cluster mode points at it."""
    degraded_events_reset()
    server = new_cluster(infra["logs"])
    try:
        with cluster_mode(server.url, settings):
            yield server
    finally:
        server.stop()
        degraded_events_reset()


def test_a_killed_cluster_degrades_and_a_restart_resumes_without_intervention(own_cluster):
    _assert_everything_works()  # the client has its slot map; scripts loaded on every primary
    RedisCluster.from_url(own_cluster.url).flushall()
    own_cluster.kill()
    _assert_everything_degrades()
    events_while_down = degraded_events()
    own_cluster.restart()  # same nodes and slots, empty memory and script caches
    _assert_everything_works()
    assert degraded_events() == events_while_down


def test_a_cluster_that_never_came_up_degrades(settings):
    degraded_events_reset()
    try:
        with cluster_mode(f"redis://127.0.0.1:{procs.free_port()}/0", settings):
            _assert_everything_degrades()
    finally:
        degraded_events_reset()


@pytest.mark.parametrize("error, unavailable", [
    (rx.RedisClusterException("Redis Cluster cannot be connected. Please provide at least one reachable node"), True),
    (rx.RedisClusterException("All slots are not covered after query all startup_nodes. 5 of 16384 covered..."), True),
    (rx.SlotNotCoveredError("Slot 5 not covered"), True),
    (rx.ClusterDownError("CLUSTERDOWN The cluster is down"), True),
    (rx.RedisClusterException("deleting multiple keys is not implemented in pipeline command"), False),
    (rx.ResponseError("CROSSSLOT Keys in request don't hash to the same slot"), False),
])
def test_cluster_errors_are_outages_or_bugs(rt, error, unavailable):
    if unavailable:
        with pytest.raises(RedisUnavailable):
            with redis_boundary("some_op"):
                raise error
        assert degraded_events() == {"some_op": 1}
    else:
        with pytest.raises(type(error)):
            with redis_boundary("some_op"):
                raise error
        assert degraded_events() == {}


def test_a_cluster_exception_caused_by_a_connection_error_is_an_outage(rt):
    with pytest.raises(RedisUnavailable):
        with redis_boundary("some_op"):
            try:
                raise rx.ConnectionError("refused")
            except rx.ConnectionError as cause:
                raise rx.RedisClusterException("something went wrong") from cause


def test_the_password_is_not_in_the_unreachable_message(settings):
    with cluster_mode(f"redis://user:s3cret@127.0.0.1:{procs.free_port()}/0", settings):
        with pytest.raises(rx.ConnectionError) as raised:
            realtime_client._cluster_client()
    assert "s3cret" not in str(raised.value)


# --- settings -----------------------------------------------------------------------------------

def _manage(*args, **env) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "MANGAASSIST_", "REDIS_"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=base | env, capture_output=True,
                          text=True)


def test_cluster_mode_refuses_a_database_other_than_0():
    refused = _manage("check", REDIS_CLUSTER="1", REDIS_URL="redis://127.0.0.1:9/1")
    assert refused.returncode != 0 and "database 0" in refused.stderr
    assert _manage("check", REDIS_CLUSTER="1", REDIS_URL="rediss://user:pw@127.0.0.1:9").returncode == 0


def test_the_cluster_test_does_not_leave_cluster_mode_on(settings):
    assert settings.REDIS_CLUSTER is False
    assert isinstance(redis_connection(), redis.Redis)


def test_the_infrastructure_page_reads_a_cluster(cluster):
    """INFO has no key to route by: the page asks every primary instead of pipelining it."""
    from sessions_app.selectors import infrastructure

    infrastructure.infrastructure_cache_clear()
    info = infrastructure.redis_info()
    assert info.available, info.error
    assert info.cluster_enabled is True and info.mode == "cluster"
    assert info.role == "3 primaries" and info.version
