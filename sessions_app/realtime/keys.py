"""Every Redis key the project uses, and how long each one lives.

Pure functions, no I/O. Nothing outside this module spells a Redis key, so a privacy delete or a
capacity review can read the whole key space here. Every key has a TTL: Redis is never the only
copy of anything (docs/architecture.md §Redis), so losing any of these keys costs latency, not data.

Keys are not prefixed with ``CACHES["default"]["KEY_PREFIX"]``: the raw client bypasses Django's
cache key function, and the namespaces below cannot collide with Django cache keys
(``<prefix>:<version>:<key>``).

Redis Cluster (``REDIS_CLUSTER``, ElastiCache with cluster mode enabled): a script, a MULTI/EXEC
or a multi-key command may only touch keys of one hash slot, and a key's slot is the CRC16 of its
name — or of the part between its first ``{`` and the next ``}`` (the *hash tag*), when there is
one. What is used together, and how each group keeps to one slot:

- one key per call, as it stands: every context cache script (``ctx:`` holds the hint and the
  payloads in one hash, which is also why an eviction can't separate them), both locks, the rate
  window's peek, staff presence, the activity feed, the connection keys' single commands;
- ``stats:stream:{<10 s>}`` + ``stats:stream-lag:{<10 s>}`` (one script): the shared hash tag is
  the bucket, so each 10-second pair shares a slot and successive pairs spread over the cluster;
- a per-customer or per-session key together with a global ``stats:`` minute bucket (rate limit
  hit, context cache read, fleet counters) or with the shared ``presence:online`` set (heartbeat,
  presence read): no hash tag can join them — tagging the bucket with the id would leave nothing
  global to read — so on a cluster the script touches its own key only and the rest follows as a
  second command (client.py ``scripts_may_cross_slots``; each module says what that costs);
- the connection map (``conn:id:<connection>`` ↔ ``conn:session:<session>``) and the privacy
  deletes (a session's, its connections' and its customer's keys): many ids, hence many slots;
  they use no transaction, and pipelines, which the cluster client splits per node.

Renaming a key on a live deployment loses what the old name held — every key here is a cache or
ephemeral with a TTL (losing one costs latency, not data), so a deploy that renames one needs no
migration: the ``stats:stream`` pair, renamed for its hash tag, restarts its 10-second buckets.
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
# Epoch ms until which readers must read the session strongly consistent: set when the change
# feed reports a change the app did not make (DAX did not see that write).
CONTEXT_DAX_STALE_FIELD = "dax_stale_until"


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


# --- change feed (DynamoDB Streams) ---------------------------------------------------------------
# Written by the stream consumer's handlers (sessions_app.services.changes); docs/architecture.md
# §Change feed.
ACTIVITY_RECENT_LIMIT = 200


def events_session_channel(*, session_id: str) -> str:
    """Pub/sub channel of one session's change events (no key: pub/sub stores nothing)."""
    return f"events:session:{_require(session_id, 'session_id')}"


def events_activity_channel() -> str:
    """Pub/sub channel of every session's change events."""
    return "events:activity"


def activity_recent_key() -> str:
    """Sorted set of the newest change events (member: the event's JSON, score: its time in ms),
    trimmed to ``ACTIVITY_RECENT_LIMIT``: the overview's activity feed. A redelivered record
    produces the same JSON, so it is stored once."""
    return "activity:recent"


def activity_ttl_seconds() -> int:
    return STATS_TTL_SECONDS


def fleet_key(*, bucket: int) -> str:
    """Hash of fleet-wide counts in one minute, counted from the stream: ``turns``,
    ``started:<channel>``, ``closed:<channel>``, ``summaries``, ``expired``."""
    return f"stats:fleet:{bucket}"


def fleet_seen_key(*, session_id: str) -> str:
    """Hash of what the fleet counters already counted for one session (the highest turn seq,
    the highest summary, flags for started/closed/expired), so a redelivered stream record is
    not counted twice."""
    return f"fleet:seen:{_require(session_id, 'session_id')}"


def fleet_seen_ttl_seconds() -> int:
    """Longer than the stream keeps a record (24 h): a record can only be redelivered while
    the stream still holds it, and every count refreshes this TTL."""
    return 25 * 60 * 60


STREAM_BUCKET_SECONDS = 10


def stream_bucket(*, epoch_seconds: float) -> int:
    """The 10-second bucket of the consumers' progress counters holding ``epoch_seconds``."""
    return int(epoch_seconds) // STREAM_BUCKET_SECONDS * STREAM_BUCKET_SECONDS


def stream_progress_key(*, bucket: int) -> str:
    """Hash of ten seconds of every consumer's progress: ``records``, ``batches``,
    ``lag_max_ms`` (the largest lag of a record processed then). Hash tag: the bucket, shared with
    ``stream_lag_samples_key`` (one script writes both)."""
    return f"stats:stream:{{{int(bucket)}}}"


def stream_lag_samples_key(*, bucket: int) -> str:
    """List of per-record lags (ms) sampled in those ten seconds (at most
    ``STREAM_LAG_SAMPLES`` per bucket), for percentiles. Same hash tag as ``stream_progress_key``."""
    return f"stats:stream-lag:{{{int(bucket)}}}"


STREAM_LAG_SAMPLES = 2000


def stream_error_key() -> str:
    """The consumers' last error (JSON: when, which consumer and shard, what)."""
    return "stream:last-error"


# --- staff presence ------------------------------------------------------------------------------
def staff_viewing_key(*, session_id: str) -> str:
    """Sorted set of the staff members looking at a session (member: username, score: Redis TIME
    of their page's last ping, ms)."""
    return f"staff:viewing:{_require(session_id, 'session_id')}"


def staff_viewing_ttl_seconds() -> int:
    """A staff member is shown as viewing for this long after their page's last ping."""
    return 60
