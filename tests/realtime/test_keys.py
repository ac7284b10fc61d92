import pytest

from sessions_app.realtime import keys


def test_every_key_lives_in_its_namespace():
    assert keys.rate_key(customer_id="c1") == "rate:c1"
    assert keys.session_lock_key(session_id="s1") == "lock:session:s1"
    assert keys.context_key(session_id="s1") == "ctx:s1"
    assert keys.presence_online_key().startswith("presence:")
    assert keys.presence_session_key(session_id="s1").startswith("presence:")
    assert keys.connection_key(connection_id="abc=") == "conn:id:abc="
    assert keys.session_connections_key(session_id="s1") == "conn:session:s1"
    assert keys.stats_rate_key(bucket=120).startswith("stats:")
    assert keys.stats_context_key(bucket=120).startswith("stats:")


def test_connection_and_session_keys_cannot_collide():
    # A connection id that looks like "session:<id>" must not alias the reverse index.
    assert keys.connection_key(connection_id="session:s1") != keys.session_connections_key(session_id="s1")


@pytest.mark.parametrize(
    "build",
    [
        lambda: keys.rate_key(customer_id=""),
        lambda: keys.session_lock_key(session_id=""),
        lambda: keys.context_key(session_id=""),
        lambda: keys.connection_key(connection_id=""),
        lambda: keys.presence_session_key(session_id=""),
    ],
)
def test_empty_ids_are_refused_rather_than_sharing_one_key(build):
    with pytest.raises(ValueError):
        build()


def test_stats_buckets_are_whole_minutes():
    assert keys.stats_bucket(epoch_seconds=125.9) == 120
    assert keys.stats_bucket(epoch_seconds=120) == 120


def test_every_ttl_is_positive(settings):
    assert keys.rate_ttl_seconds(window_seconds=60) == 60
    assert keys.session_lock_ttl_seconds() == settings.SESSION_LOCK_TIMEOUT > 0
    assert keys.context_ttl_seconds() == settings.CONTEXT_CACHE_TTL > 0
    assert keys.presence_ttl_seconds() == settings.PRESENCE_TTL_SECONDS > 0
    assert keys.connection_ttl_seconds() == settings.CONNECTION_TTL_SECONDS > 0
    assert keys.stats_ttl_seconds() > 0
