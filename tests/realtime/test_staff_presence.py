from sessions_app.realtime import staff_viewing, staff_viewing_ping


def test_viewers_are_listed_newest_first_and_age_out(rt, settings):
    assert staff_viewing(session_id="s1") == []
    assert staff_viewing_ping(session_id="s1", username="aiko")
    assert staff_viewing_ping(session_id="s1", username="ken")
    assert staff_viewing_ping(session_id="s2", username="sato")
    viewers = staff_viewing(session_id="s1")
    assert {v.username for v in viewers} == {"aiko", "ken"} and all(0 <= v.seen_seconds_ago < 60 for v in viewers)
    # An entry older than the TTL is not shown (here: written with an old score by hand).
    rt.zadd("staff:viewing:s1", {"gone": 1})
    assert "gone" not in {v.username for v in staff_viewing(session_id="s1")}
    assert 0 < rt.ttl("staff:viewing:s1") <= 60


def test_redis_down_is_unknown_not_nobody(own_redis):
    own_redis.kill()
    assert staff_viewing_ping(session_id="s1", username="aiko") is False
    assert staff_viewing(session_id="s1") is None
