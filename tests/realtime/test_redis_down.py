"""Redis unreachable or frozen: every call site degrades as documented, then recovers by itself.

Each test runs against its own redis-server (``own_redis``), which it kills, freezes or
restarts; the shared test Redis is never touched.
"""

import pytest

from sessions_app.exceptions import RedisUnavailable
from sessions_app.realtime import (
    connection_delete,
    connection_get,
    connection_put,
    connections_for_session,
    context_cache_forget,
    context_cache_get,
    context_cache_hit_ratio,
    context_cache_invalidate,
    context_cache_put,
    context_cache_turn_written,
    degraded_events,
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
    session_write_lock,
)


def _assert_everything_degrades():
    decision = rate_limit_hit(customer_id="c", limit=1, window_seconds=60)
    assert decision.allowed and decision.degraded and decision.remaining == 1
    assert decision.headers() == {}  # an unchecked quota is not advertised
    # Fails open every time, even past the limit.
    assert rate_limit_hit(customer_id="c", limit=1, window_seconds=60).allowed
    assert rate_limit_peek(customer_id="c") is None
    assert rate_limit_stats() is None

    with session_write_lock(session_id="s1") as lock:
        assert not lock.held and lock.degraded

    assert presence_heartbeat(session_id="s1") is False
    assert presence_get(session_id="s1").state == "unknown"
    assert {p.state for p in presence_get_many(session_ids=["s1", "s2"]).values()} == {"unknown"}
    assert presence_online() is None
    assert presence_online_count() is None
    assert presence_clear(session_id="s1") is False

    read = context_cache_get(session_id="s1", variant="t20")
    assert read.payload is None and read.hint is None and read.degraded
    assert context_cache_put(session_id="s1", variant="t20", seq=9, payload=b"x") is False
    context_cache_turn_written(session_id="s1", seq=10)
    context_cache_invalidate(session_id="s1")
    assert context_cache_hit_ratio() is None

    # Redis is the only home of the connection map and the privacy delete must not claim
    # success: these raise, and the API turns that into 503.
    for call in [
        lambda: connection_put(connection_id="k1", session_id="s1"),
        lambda: connection_get(connection_id="k1"),
        lambda: connection_delete(connection_id="k1"),
        lambda: connections_for_session(session_id="s1"),
        lambda: context_cache_forget(session_id="s1"),
        lambda: realtime_keys_for_session(session_id="s1"),
        lambda: realtime_forget_session(session_id="s1"),
    ]:
        with pytest.raises(RedisUnavailable):
            call()

    events = degraded_events()
    for operation in ["rate_limit_hit", "session_write_lock", "presence_get", "context_cache_get", "connection_put"]:
        assert events.get(operation, 0) >= 1, operation
    assert events["rate_limit_hit"] == 2


def _assert_everything_works():
    own_quota = rate_limit_hit(customer_id="fresh", limit=5, window_seconds=60)
    assert own_quota.headers()["X-RateLimit-Remaining"] == "4"
    assert not rate_limit_hit(customer_id="c", limit=1, window_seconds=60).degraded
    assert not rate_limit_hit(customer_id="c", limit=1, window_seconds=60).allowed
    with session_write_lock(session_id="s1") as lock:
        assert lock.held
    assert presence_heartbeat(session_id="s1", connection_id="k1")
    assert presence_get(session_id="s1").state == "online"
    assert presence_online() == ["s1"] and presence_online_count() == 1
    context_cache_turn_written(session_id="s1", seq=10)
    assert context_cache_put(session_id="s1", variant="t20", seq=10, payload=b"ctx")
    assert context_cache_get(session_id="s1", variant="t20").payload == b"ctx"
    connection_put(connection_id="k1", session_id="s1")
    assert connections_for_session(session_id="s1") == ["k1"]
    assert realtime_forget_session(session_id="s1", customer_id="c") >= 5


def test_own_redis_is_the_one_in_use(own_redis):
    _assert_everything_works()
    assert own_redis.client.keys("stats:*")  # proves the fixture re-pointed the cache


def test_killed_redis_degrades_and_a_restart_resumes_without_intervention(own_redis):
    _assert_everything_works()  # warm pool, scripts loaded in the server's script cache
    own_redis.client.flushall()
    own_redis.kill()
    _assert_everything_degrades()
    events_while_down = degraded_events()
    own_redis.start()  # same port, empty memory, empty script cache
    _assert_everything_works()
    assert degraded_events() == events_while_down  # not one call degraded after the restart


def test_redis_that_never_came_up_degrades(own_redis):
    own_redis.kill()
    _assert_everything_degrades()


def test_frozen_redis_is_bounded_by_the_socket_timeout(own_redis, settings):
    # SIGSTOP: TCP connects (the kernel accepts) but nothing answers, so only the socket timeout
    # stands between a request and a hang. No wall clock here: the calls simply must return.
    _assert_everything_works()
    own_redis.client.flushall()
    own_redis.freeze()
    try:
        decision = rate_limit_hit(customer_id="c", limit=1, window_seconds=60)
        assert decision.allowed and decision.degraded
        assert presence_get(session_id="s1").state == "unknown"
        assert context_cache_get(session_id="s1", variant="t20").degraded
        with session_write_lock(session_id="s1") as lock:
            assert lock.degraded
    finally:
        own_redis.thaw()
    events_while_frozen = degraded_events()
    _assert_everything_works()
    assert degraded_events() == events_while_frozen


def test_redis_out_of_memory_degrades_like_an_outage(own_redis):
    # maxmemory reached with noeviction: writes (and scripts that write) are refused with OOM.
    own_redis.client.config_set("maxmemory-policy", "noeviction")
    own_redis.client.config_set("maxmemory", 1)
    try:
        # Redis still runs the limiter script (it writes before its first deny-OOM command);
        # either way the turn is let through without an exception.
        assert rate_limit_hit(customer_id="c", limit=1, window_seconds=60).allowed
        assert context_cache_put(session_id="s1", variant="t20", seq=1, payload=b"x") is False
        with session_write_lock(session_id="s1") as lock:
            assert lock.degraded
        assert presence_heartbeat(session_id="s1") in (True, False)
        events = degraded_events()
        assert events["context_cache_put"] == 1 and events["session_write_lock"] == 1
    finally:
        own_redis.client.config_set("maxmemory", 0)
    _assert_everything_works()
