from sessions_app.realtime import (
    connection_put,
    context_cache_put,
    presence_heartbeat,
    presence_online,
    rate_limit_hit,
    realtime_forget_session,
    realtime_keys_for_session,
)


def _populate():
    context_cache_put(session_id="s1", variant="t20", seq=1, payload=b"x")
    presence_heartbeat(session_id="s1", connection_id="c1")
    presence_heartbeat(session_id="other")
    connection_put(connection_id="c1", session_id="s1")
    rate_limit_hit(customer_id="cust", limit=5, window_seconds=60)


def test_keys_for_session_lists_what_exists(rt):
    _populate()
    assert sorted(realtime_keys_for_session(session_id="s1")) == [
        "conn:id:c1",
        "conn:session:s1",
        "ctx:s1",
        "presence:session:s1",
    ]
    assert "rate:cust" in realtime_keys_for_session(session_id="s1", customer_id="cust")


def test_forget_session_deletes_its_keys_and_presence_only(rt):
    _populate()
    removed = realtime_forget_session(session_id="s1", customer_id="cust")
    assert removed == 6  # 5 keys + the presence entry
    assert realtime_keys_for_session(session_id="s1", customer_id="cust") == []
    assert presence_online() == ["other"]
    assert rt.exists("presence:online")
    assert realtime_forget_session(session_id="s1") == 0
