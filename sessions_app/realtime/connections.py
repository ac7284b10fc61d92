"""WebSocket connection id ↔ session id, both directions, each with ``CONNECTION_TTL_SECONDS``.

``conn:id:<connection_id>`` holds the session id; ``conn:session:<session_id>`` is the set of
the session's connection ids. Both are written in one MULTI/EXEC so neither direction exists
without the other, and a reconnect refreshes both TTLs (API Gateway caps a WebSocket at 2 h).

Redis is the only place this mapping lives (it is rebuilt by the next $connect), so unlike the
rest of this package these functions raise ``RedisUnavailable`` instead of guessing: the API
answers 503 and API Gateway / the client retries.
"""

from __future__ import annotations

from redis.client import Pipeline

from . import keys
from .client import redis_boundary, redis_connection


def connection_put(*, connection_id: str, session_id: str) -> None:
    """Bind ``connection_id`` to ``session_id`` (idempotent; refreshes both TTLs).

    Rebinding a connection to another session removes it from the old session's set in the same
    transaction. Redis down: raises ``RedisUnavailable``.
    """
    forward = keys.connection_key(connection_id=connection_id)
    ttl = keys.connection_ttl_seconds()

    def bind(pipe: Pipeline) -> None:
        previous = pipe.get(forward)
        pipe.multi()
        if previous is not None and previous.decode() != session_id:
            pipe.srem(keys.session_connections_key(session_id=previous.decode()), connection_id)
        reverse = keys.session_connections_key(session_id=session_id)
        pipe.set(forward, session_id, ex=ttl)
        pipe.sadd(reverse, connection_id)
        pipe.expire(reverse, ttl)

    with redis_boundary("connection_put"):
        # WATCH on the forward key: a concurrent rebind makes EXEC fail and `transaction` retry.
        redis_connection().transaction(bind, forward)


def connection_get(*, connection_id: str) -> str | None:
    """The session bound to ``connection_id``, or None. Redis down: raises ``RedisUnavailable``."""
    with redis_boundary("connection_get"):
        value = redis_connection().get(keys.connection_key(connection_id=connection_id))
    return value.decode() if value is not None else None


def connection_delete(*, connection_id: str) -> bool:
    """Remove both directions of ``connection_id`` ($disconnect). True if it was bound.

    Redis down: raises ``RedisUnavailable`` (both keys still expire on their own).
    """
    forward = keys.connection_key(connection_id=connection_id)
    existed = False

    def unbind(pipe: Pipeline) -> None:
        nonlocal existed
        session_id = pipe.get(forward)
        existed = session_id is not None
        pipe.multi()
        pipe.delete(forward)
        if session_id is not None:
            pipe.srem(keys.session_connections_key(session_id=session_id.decode()), connection_id)

    with redis_boundary("connection_delete"):
        redis_connection().transaction(unbind, forward)
    return existed


def connections_for_session(*, session_id: str) -> list[str]:
    """The session's live connection ids, sorted.

    Ids whose forward key has expired or been rebound elsewhere are dropped (and pruned from
    the set). Redis down: raises ``RedisUnavailable``.
    """
    reverse = keys.session_connections_key(session_id=session_id)
    with redis_boundary("connections_for_session"):
        client = redis_connection()
        members = sorted(m.decode() for m in client.smembers(reverse))
        if not members:
            return []
        owners = client.mget([keys.connection_key(connection_id=m) for m in members])
        live = [m for m, owner in zip(members, owners, strict=True) if owner is not None and owner.decode() == session_id]
        stale = sorted(set(members) - set(live))
        if stale:
            client.srem(reverse, *stale)
    return live
