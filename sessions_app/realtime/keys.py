"""Every Redis key the project uses, and how long each one lives.

Pure functions, no I/O. Nothing outside this module spells a Redis key, so a privacy delete or a
capacity review can read the whole key space here. Every key has a TTL: Redis is never the only
copy of anything (docs/architecture.md §Redis), so losing any of these keys costs latency, not data.

Keys are not prefixed with ``CACHES["default"]["KEY_PREFIX"]``: the raw client bypasses Django's
cache key function, and the namespaces below cannot collide with Django cache keys
(``<prefix>:<version>:<key>``).

The rate-limit and context-cache scripts touch two keys (the data key and a ``stats:`` bucket).
That is fine on a single-shard Redis / ElastiCache with cluster mode disabled; with cluster mode
enabled the pairs would need a shared hash tag (``{<id>}``) or the stats moved out of the script.
"""

from __future__ import annotations

from django.conf import settings

# Stats buckets are per minute; keeping a day lets the console show trends without a database.
STATS_TTL_SECONDS = 24 * 60 * 60
STATS_BUCKET_SECONDS = 60


def _require(value: str, name: str) -> str:
    # An empty id would silently share one key between every caller.
    if not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


# --- rate limit ---------------------------------------------------------------------------------
def rate_key(*, customer_id: str) -> str:
    """Sorted set of the customer's counted turns (member: unique token, score: server µs)."""
    return f"rate:{_require(customer_id, 'customer_id')}"


def rate_ttl_seconds(*, window_seconds: int) -> int:
    """The window: an entry older than that can never count again."""
    return int(window_seconds)


# --- session write lock ---------------------------------------------------------------------------
def session_lock_key(*, session_id: str) -> str:
    return f"lock:session:{_require(session_id, 'session_id')}"


def session_lock_ttl_seconds() -> float:
    """redis-py's Lock sets it (PX) on acquire; a crashed holder frees the lock after this."""
    return settings.SESSION_LOCK_TIMEOUT


def summary_lock_key(*, session_id: str) -> str:
    """Held by one summary task per session; its value is the task id, with ``|wanted`` appended
    once another run was refused while it held the lock (see locks.py)."""
    return f"lock:summary:{_require(session_id, 'session_id')}"


# --- context cache --------------------------------------------------------------------------------
def context_key(*, session_id: str) -> str:
    """Hash: field ``seq`` (freshness hint) plus one field per cached context variant."""
    return f"ctx:{_require(session_id, 'session_id')}"


CONTEXT_HINT_FIELD = "seq"


def context_ttl_seconds() -> int:
    return settings.CONTEXT_CACHE_TTL


# --- presence ---------------------------------------------------------------------------------------
def presence_online_key() -> str:
    """Sorted set of session ids scored by their last heartbeat (server time, seconds)."""
    return "presence:online"


def presence_session_key(*, session_id: str) -> str:
    """The connection id that sent the session's last heartbeat."""
    return f"presence:session:{_require(session_id, 'session_id')}"


def presence_ttl_seconds() -> int:
    return settings.PRESENCE_TTL_SECONDS


# --- WebSocket connections ------------------------------------------------------------------------
def connection_key(*, connection_id: str) -> str:
    """connection id → session id."""
    return f"conn:id:{_require(connection_id, 'connection_id')}"


def session_connections_key(*, session_id: str) -> str:
    """session id → set of connection ids."""
    return f"conn:session:{_require(session_id, 'session_id')}"


def connection_ttl_seconds() -> int:
    return settings.CONNECTION_TTL_SECONDS


# --- console counters -------------------------------------------------------------------------------
def stats_bucket(*, epoch_seconds: float) -> int:
    """The minute bucket (epoch seconds at the start of the minute) holding ``epoch_seconds``."""
    return int(epoch_seconds) // STATS_BUCKET_SECONDS * STATS_BUCKET_SECONDS


def stats_rate_key(*, bucket: int) -> str:
    """Hash ``{allowed, denied}`` of rate-limit decisions in one minute."""
    return f"stats:rate:{bucket}"


def stats_context_key(*, bucket: int) -> str:
    """Hash ``{hit, miss}`` of context-cache lookups in one minute."""
    return f"stats:ctx:{bucket}"


def stats_ttl_seconds() -> int:
    return STATS_TTL_SECONDS
