"""WebSocket connection id ↔ session id, both directions, each with ``CONNECTION_TTL_SECONDS``.

``conn:id:<connection_id>`` holds the session id — the truth about a connection;
``conn:session:<session_id>`` is the set of the session's connection ids — an index of it. The
two cannot share a hash slot (``$disconnect`` names the connection only, and a connection may be
rebound to another session), so no transaction covers both on a cluster, and none is used on a
single Redis either: each write orders its commands so that what a failure can leave behind is
an index entry without a live forward key, and ``connections_for_session`` drops (and prunes)
every entry whose forward key is gone or names another session. A reconnect refreshes both
TTLs (API Gateway caps a WebSocket at 2 h).

Redis is the only place this mapping lives (it is rebuilt by the next $connect), so unlike the
rest of this package these functions raise ``RedisUnavailable`` instead of guessing: the API
answers 503 and API Gateway / the client retries — a ``$connect`` that got 503 was refused, so a
half-written mapping of it is never used.

Needs Redis ≥ 6.2 (``SET … GET``, ``GETDEL``).
"""

from __future__ import annotations

from . import keys
from .client import redis_boundary, redis_connection


def connection_put(*, connection_id: str, session_id: str) -> None:
    """Bind ``connection_id`` to ``session_id`` (idempotent; refreshes both TTLs). One round trip,
    two when the connection was bound to another session (its old index entry is removed).

    The index entry is written before the forward key, in one pipeline; the forward key's old
    value comes back from the same ``SET … GET``. Redis down: raises ``RedisUnavailable``.
    """
    forward = keys.connection_key(connection_id=connection_id)
    reverse = keys.session_connections_key(session_id=session_id)
    ttl = keys.connection_ttl_seconds()
    with redis_boundary("connection_put"):
        client = redis_connection()
        pipe = client.pipeline(transaction=False)
        pipe.sadd(reverse, connection_id)
        pipe.expire(reverse, ttl)
        pipe.set(forward, session_id, ex=ttl, get=True)
        _added, _expired, previous = pipe.execute()
        if previous is not None and previous.decode() != session_id:
            # A concurrent rebind may have moved it again meanwhile: harmless, the reader checks
            # every entry against the forward key.
            client.srem(keys.session_connections_key(session_id=previous.decode()), connection_id)


def connection_get(*, connection_id: str) -> str | None:
    """The session bound to ``connection_id``, or None. Redis down: raises ``RedisUnavailable``."""
    with redis_boundary("connection_get"):
        value = redis_connection().get(keys.connection_key(connection_id=connection_id))
    return value.decode() if value is not None else None


def connection_delete(*, connection_id: str) -> bool:
    """Remove both directions of ``connection_id`` ($disconnect). True if it was bound.

    ``GETDEL`` answers, atomically, whether it was bound and to which session; the index entry is
    removed after it. Redis down: raises ``RedisUnavailable`` (both keys still expire on their own).
    """
    with redis_boundary("connection_delete"):
        client = redis_connection()
        session_id = client.getdel(keys.connection_key(connection_id=connection_id))
        if session_id is not None:
            client.srem(keys.session_connections_key(session_id=session_id.decode()), connection_id)
    return session_id is not None


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
        # One GET per forward key, pipelined (not MGET: on a cluster they are in many slots).
        pipe = client.pipeline(transaction=False)
        for m in members:
            pipe.get(keys.connection_key(connection_id=m))
        owners = pipe.execute()
        live = [m for m, owner in zip(members, owners, strict=True) if owner is not None and owner.decode() == session_id]
        stale = sorted(set(members) - set(live))
        if stale:
            client.srem(reverse, *stale)
    return live
