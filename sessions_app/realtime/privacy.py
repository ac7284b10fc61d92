"""Find and delete every Redis key holding a session's (and optionally its customer's) data.

Everything here expires on its own within ``max(CONNECTION_TTL_SECONDS, ...)``; the privacy
delete removes it now so "deleted" means deleted. Both functions raise ``RedisUnavailable`` when
Redis is down: the caller must record the delete as incomplete (and may rely on the TTLs).
"""

from __future__ import annotations

from . import keys
from .client import redis_boundary, redis_connection


def _candidate_keys(*, session_id: str, customer_id: str | None) -> list[str]:
    client = redis_connection()
    candidates = [
        keys.context_key(session_id=session_id),
        keys.session_lock_key(session_id=session_id),
        keys.presence_session_key(session_id=session_id),
        keys.session_connections_key(session_id=session_id),
    ]
    connection_ids = sorted(m.decode() for m in client.smembers(keys.session_connections_key(session_id=session_id)))
    candidates += [keys.connection_key(connection_id=c) for c in connection_ids]
    if customer_id:
        # The rate window is per customer, not per session: only pass customer_id when the
        # customer (not just one session) is being forgotten.
        candidates.append(keys.rate_key(customer_id=customer_id))
    return candidates


def realtime_keys_for_session(*, session_id: str, customer_id: str | None = None) -> list[str]:
    """The existing Redis keys holding this session's data (and the customer's rate window).

    The session's entry in the shared ``presence:online`` set is not a key of its own and is not
    listed; ``realtime_forget_session`` removes it. Redis down: raises ``RedisUnavailable``.
    """
    with redis_boundary("realtime_keys_for_session"):
        candidates = _candidate_keys(session_id=session_id, customer_id=customer_id)
        pipe = redis_connection().pipeline(transaction=False)
        for key in candidates:
            pipe.exists(key)
        present = pipe.execute()
    return [k for k, n in zip(candidates, present, strict=True) if n]


def realtime_forget_session(*, session_id: str, customer_id: str | None = None) -> int:
    """Delete the session's Redis keys and its presence entry; return how many were removed.

    Redis down: raises ``RedisUnavailable``.
    """
    with redis_boundary("realtime_forget_session"):
        candidates = _candidate_keys(session_id=session_id, customer_id=customer_id)
        pipe = redis_connection().pipeline(transaction=True)
        pipe.delete(*candidates)
        pipe.zrem(keys.presence_online_key(), session_id)
        deleted, unlisted = pipe.execute()
    return int(deleted) + int(unlisted)
