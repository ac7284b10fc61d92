import time

from sessions_app.realtime import (
    presence_clear,
    presence_get,
    presence_get_many,
    presence_heartbeat,
    presence_online,
    presence_online_count,
)


def test_a_session_never_seen_is_offline(rt):
    p = presence_get(session_id="s1")
    assert p.state == "offline" and p.heartbeat_age_seconds is None and p.connection_id is None


def test_heartbeat_makes_a_session_online_with_its_age_and_connection(rt):
    assert presence_heartbeat(session_id="s1", connection_id="conn-1")
    p = presence_get(session_id="s1")
    assert p.state == "online"
    assert 0 <= p.heartbeat_age_seconds < 90
    assert p.connection_id == "conn-1"


def test_heartbeat_without_connection_id_keeps_the_known_one(rt):
    presence_heartbeat(session_id="s1", connection_id="conn-1")
    presence_heartbeat(session_id="s1")
    assert presence_get(session_id="s1").connection_id == "conn-1"


def _scripts_run(rt) -> int:
    stats = rt.info("commandstats")
    return sum(stats.get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("eval", "evalsha"))


def test_many_sessions_in_one_round_trip_each_with_its_own_state(rt):
    presence_heartbeat(session_id="a", connection_id="conn-a")
    presence_heartbeat(session_id="c")
    presence_get_many(session_ids=["x"])  # the script is loaded from here on
    before = _scripts_run(rt)
    got = presence_get_many(session_ids=["a", "b", "c", "a"])
    assert _scripts_run(rt) - before == 1
    assert list(got) == ["a", "b", "c"]
    assert (got["a"].state, got["a"].connection_id) == ("online", "conn-a")
    assert (got["b"].state, got["b"].connection_id) == ("offline", None)
    assert (got["c"].state, got["c"].connection_id) == ("online", None)
    assert presence_get_many(session_ids=[]) == {}


def test_online_lists_most_recent_heartbeat_first_and_counts(rt):
    for sid in ["a", "b", "c"]:
        presence_heartbeat(session_id=sid)
        time.sleep(0.002)  # distinct millisecond scores
    assert presence_online() == ["c", "b", "a"]
    assert presence_online(limit=2) == ["c", "b"]
    assert presence_online_count() == 3


def test_nobody_online_is_an_empty_list_not_unknown(rt):
    assert presence_online() == []
    assert presence_online_count() == 0


def test_clear_takes_a_session_offline(rt):
    presence_heartbeat(session_id="s1", connection_id="conn-1")
    presence_heartbeat(session_id="s2")
    assert presence_clear(session_id="s1")
    assert presence_get(session_id="s1").state == "offline"
    assert presence_online() == ["s2"]
    assert not rt.exists("presence:session:s1")


def test_sessions_without_recent_heartbeat_go_offline_and_are_trimmed(rt, settings):
    settings.PRESENCE_TTL_SECONDS = 1
    presence_heartbeat(session_id="old", connection_id="c-old")
    time.sleep(1.1)
    assert presence_get(session_id="old").state == "offline"
    assert presence_online() == [] and presence_online_count() == 0
    presence_heartbeat(session_id="new")
    assert rt.zrange("presence:online", 0, -1) == [b"new"]  # the heartbeat trimmed "old"


def test_presence_keys_carry_ttls(rt, settings):
    presence_heartbeat(session_id="s1", connection_id="c1")
    assert 0 < rt.ttl("presence:online") <= settings.PRESENCE_TTL_SECONDS
    assert 0 < rt.ttl("presence:session:s1") <= settings.PRESENCE_TTL_SECONDS
