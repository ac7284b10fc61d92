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


def test_keys_for_session_include_its_summary_lock(rt):
    from sessions_app.realtime import summary_lock_acquire

    assert summary_lock_acquire(session_id="s1", token="task-1", ttl_seconds=60)
    assert "lock:summary:s1" in realtime_keys_for_session(session_id="s1")
    assert realtime_forget_session(session_id="s1") == 1
    assert not rt.exists("lock:summary:s1")


def test_every_key_that_names_a_session_or_customer_is_covered(rt):
    """Every per-session and per-customer key builder in keys.py is one the privacy functions
    find: a new key type added there without a privacy entry fails this test."""
    import inspect

    from sessions_app.realtime import keys
    from sessions_app.realtime.privacy import CUSTOMER_KEY_BUILDERS, SESSION_KEY_BUILDERS

    def builders_taking(param: str) -> set[str]:
        return {name for name, fn in vars(keys).items()
                if name.endswith("_key") and callable(fn) and param in inspect.signature(fn).parameters}

    per_session, per_customer = builders_taking("session_id"), builders_taking("customer_id")
    assert per_session == {b.__name__ for b in SESSION_KEY_BUILDERS}
    assert per_customer == {b.__name__ for b in CUSTOMER_KEY_BUILDERS} == {"rate_key"}


def test_forget_customer_removes_the_rate_window_only(rt):
    from sessions_app.realtime.privacy import realtime_forget_customer, realtime_keys_for_customer

    _populate()
    rate_limit_hit(customer_id="someone-else", limit=5, window_seconds=60)
    assert realtime_keys_for_customer(customer_id="cust") == ["rate:cust"]
    assert realtime_forget_customer(customer_id="cust") == 1
    assert not rt.exists("rate:cust") and rt.exists("rate:someone-else") and rt.exists("ctx:s1")
    assert realtime_keys_for_customer(customer_id="cust") == []
