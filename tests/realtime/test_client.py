import pytest
from redis import exceptions as rx

from sessions_app.exceptions import RedisUnavailable
from sessions_app.realtime import context_cache_get, degraded_events, redis_boundary, redis_connection
from sessions_app.realtime.client import redis_guarded


def test_connection_is_the_configured_default_cache(rt, infra):
    client = redis_connection()
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["port"] == infra["redis_port"]
    assert kwargs["socket_timeout"] > 0 and kwargs["socket_connect_timeout"] > 0
    assert client.ping()


@pytest.mark.parametrize(
    "error",
    [rx.ConnectionError("refused"), rx.TimeoutError("slow"), rx.OutOfMemoryError("full"), rx.ResponseError("MISCONF x")],
)
def test_boundary_turns_unavailability_into_redis_unavailable_and_counts_it(rt, error):
    with pytest.raises(RedisUnavailable) as exc:
        with redis_boundary("some_op"):
            raise error
    assert exc.value.__cause__ is error
    assert degraded_events() == {"some_op": 1}


def test_boundary_lets_bugs_through(rt):
    with pytest.raises(rx.ResponseError):
        with redis_boundary("some_op"):
            raise rx.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert degraded_events() == {}


def test_a_wrong_key_type_is_a_bug_not_an_outage(rt):
    rt.set("ctx:s1", "not a hash")
    with pytest.raises(rx.ResponseError):
        context_cache_get(session_id="s1", variant="t20")


def test_decorator_form(rt):
    @redis_guarded("decorated")
    def boom() -> None:
        raise rx.ConnectionError("down")

    with pytest.raises(RedisUnavailable):
        boom()
    assert degraded_events() == {"decorated": 1}


def test_replies_are_parsed_by_hiredis(rt):
    # The hot path's cost is mostly one reply parsed per request; the pure-Python parser is a
    # silent fallback when hiredis is missing from the environment.
    from redis._parsers import _HiredisParser

    connection = redis_connection().connection_pool.get_connection()
    try:
        assert isinstance(connection._parser, _HiredisParser)
    finally:
        redis_connection().connection_pool.release(connection)
