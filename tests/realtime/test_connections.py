from sessions_app.realtime import connection_delete, connection_get, connection_put, connections_for_session


def test_put_maps_both_directions_with_ttls(rt, settings):
    connection_put(connection_id="c1", session_id="s1")
    connection_put(connection_id="c2", session_id="s1")
    assert connection_get(connection_id="c1") == "s1"
    assert connections_for_session(session_id="s1") == ["c1", "c2"]
    for key in ["conn:id:c1", "conn:id:c2", "conn:session:s1"]:
        assert 0 < rt.ttl(key) <= settings.CONNECTION_TTL_SECONDS


def test_unknown_connection_and_session(rt):
    assert connection_get(connection_id="nope") is None
    assert connections_for_session(session_id="nope") == []
    assert connection_delete(connection_id="nope") is False


def test_delete_removes_both_directions(rt):
    connection_put(connection_id="c1", session_id="s1")
    connection_put(connection_id="c2", session_id="s1")
    assert connection_delete(connection_id="c1") is True
    assert connection_get(connection_id="c1") is None
    assert connections_for_session(session_id="s1") == ["c2"]
    assert connection_delete(connection_id="c2") is True
    assert not rt.exists("conn:session:s1")


def test_rebinding_a_connection_moves_it_to_the_new_session(rt):
    connection_put(connection_id="c1", session_id="s1")
    connection_put(connection_id="c1", session_id="s2")
    assert connection_get(connection_id="c1") == "s2"
    assert connections_for_session(session_id="s1") == []
    assert connections_for_session(session_id="s2") == ["c1"]


def test_put_is_idempotent(rt):
    connection_put(connection_id="c1", session_id="s1")
    connection_put(connection_id="c1", session_id="s1")
    assert connections_for_session(session_id="s1") == ["c1"]


def test_expired_forward_keys_are_dropped_from_the_session_list(rt):
    connection_put(connection_id="c1", session_id="s1")
    connection_put(connection_id="c2", session_id="s1")
    rt.delete("conn:id:c1")  # as if its TTL ran out
    assert connections_for_session(session_id="s1") == ["c2"]
    assert rt.smembers("conn:session:s1") == {b"c2"}
