"""Find and delete every Redis key holding a session's or a customer's data.

Everything here expires on its own within ``max(CONNECTION_TTL_SECONDS, ...)``; the privacy
delete removes it now so "deleted" means deleted. Every function raises ``RedisUnavailable``
when Redis is down: the caller must record the delete as incomplete (and may rely on the TTLs).

The key builders of ``keys.py`` that take a session or customer id are listed below, and a test
fails if one is added there without being listed here. The per-minute ``stats:`` counters hold
totals only (no id), so they are not personal data.

The keys of one session are in many hash slots on a cluster (they are named by the session, the
customer or the connection), so the deletes are one ``DEL`` per key in one non-transactional
pipeline — the cluster client sends each node its share — not one multi-key ``DEL`` in a
transaction. Nothing needed the transaction: a delete that fails half-way raises, the caller
records it as incomplete, and a retry deletes what is left.
"""

from __future__ import annotations

from . import keys
from .client import redis_boundary, redis_connection
from .events import activity_forget_session

# Keys named by the session id. The connection keys (conn:id:<connection>) are found through
# the session's connection set, and its entry in the shared presence:online set is removed by
# ``realtime_forget_session`` (it is a member, not a key of its own).
SESSION_KEY_BUILDERS = (
    keys.context_key,
    keys.session_lock_key,
    keys.summary_lock_key,
    keys.presence_session_key,
    keys.session_connections_key,
    keys.fleet_seen_key,
    keys.staff_viewing_key,
)
# Keys named by the customer id: the rate window spans all of the customer's sessions, so only
# forgetting the customer (not one of their sessions) removes it.
CUSTOMER_KEY_BUILDERS = (keys.rate_key,)


def _session_candidates(*, session_id: str) -> list[str]:
    candidates = [build(session_id=session_id) for build in SESSION_KEY_BUILDERS]
    members = redis_connection().smembers(keys.session_connections_key(session_id=session_id))
    candidates += [keys.connection_key(connection_id=c) for c in sorted(m.decode() for m in members)]
    return candidates


def _customer_candidates(*, customer_id: str) -> list[str]:
    return [build(customer_id=customer_id) for build in CUSTOMER_KEY_BUILDERS]


def _existing(candidates: list[str]) -> list[str]:
    pipe = redis_connection().pipeline(transaction=False)
    for key in candidates:
        pipe.exists(key)
    return [k for k, n in zip(candidates, pipe.execute(), strict=True) if n]


def realtime_keys_for_session(*, session_id: str, customer_id: str | None = None) -> list[str]:
    """The existing Redis keys holding this session's data (and, with ``customer_id``, the
    customer's). Redis down: raises ``RedisUnavailable``."""
    with redis_boundary("realtime_keys_for_session"):
        candidates = _session_candidates(session_id=session_id)
        if customer_id:
            candidates += _customer_candidates(customer_id=customer_id)
        return _existing(candidates)


def realtime_keys_for_customer(*, customer_id: str) -> list[str]:
    """The existing Redis keys named by the customer (not those of their sessions: list each
    session with ``realtime_keys_for_session``). Redis down: raises ``RedisUnavailable``."""
    with redis_boundary("realtime_keys_for_customer"):
        return _existing(_customer_candidates(customer_id=customer_id))


def _delete(candidates: list[str], *, unlist_session: str | None = None) -> int:
    """DEL each of ``candidates`` (and take ``unlist_session`` out of the online set): one round
    trip; how many keys and entries were removed."""
    pipe = redis_connection().pipeline(transaction=False)
    for key in candidates:
        pipe.delete(key)
    if unlist_session is not None:
        pipe.zrem(keys.presence_online_key(), unlist_session)
    return sum(int(n) for n in pipe.execute())


def realtime_forget_session(*, session_id: str, customer_id: str | None = None) -> int:
    """Delete the session's Redis keys (and, with ``customer_id``, the customer's) and its
    presence entry; return how many were removed. Redis down: raises ``RedisUnavailable``."""
    with redis_boundary("realtime_forget_session"):
        candidates = _session_candidates(session_id=session_id)
        if customer_id:
            candidates += _customer_candidates(customer_id=customer_id)
        removed = _delete(candidates, unlist_session=session_id)
    # The activity feed names the session in its events (members of one shared sorted set).
    return removed + activity_forget_session(session_id=session_id)


def realtime_forget_customer(*, customer_id: str) -> int:
    """Delete the keys named by the customer; return how many were removed. Redis down: raises
    ``RedisUnavailable``."""
    with redis_boundary("realtime_forget_customer"):
        return _delete(_customer_candidates(customer_id=customer_id))


def realtime_session_gone(*, session_id: str) -> int:
    """A session's items are gone from DynamoDB (TTL or a delete the change feed reported):
    drop what Redis still holds for it — cached context, locks, presence, connection mappings.
    Not its ``fleet:seen:`` entry, which keeps a redelivered record from being counted twice.
    Returns how many keys and entries were removed. Redis down: raises ``RedisUnavailable``."""
    with redis_boundary("realtime_session_gone"):
        candidates = [k for k in _session_candidates(session_id=session_id)
                      if k != keys.fleet_seen_key(session_id=session_id)]
        return _delete(candidates, unlist_session=session_id)
