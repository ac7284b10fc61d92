"""Who is chatting right now: heartbeat-driven presence for the staff console.

One sorted set ``presence:online`` (member: session id, score: Redis TIME of the last heartbeat,
in milliseconds) answers "online now" as a range query; entries older than
``PRESENCE_TTL_SECONDS`` are trimmed on every heartbeat and ignored by every read, so a session
that stops sending heartbeats goes offline without a sweeper. The zset itself expires after the
same TTL when no session at all is heartbeating. Server time keeps app-server clock skew out of
"how long ago".

When Redis is unavailable presence is *unknown*, never "offline": the console must not tell
staff that a customer left because our cache is down.

The per-session ``presence:session:<id>`` key (the heartbeating connection) rides in the same
script as the shared zset on a single Redis. On a cluster the two are in different slots, and
nothing needs them atomic (presence is advisory: a heartbeat whose second half failed shows the
session online without its connection id until the next one), so there the script touches the
zset only and the connection key is written or read by a second command in the same call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sessions_app.exceptions import RedisUnavailable

from . import keys
from .client import LuaScript, redis_boundary, redis_connection, scripts_may_cross_slots

_NOW_MS = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

_heartbeat_script = LuaScript(
    _NOW_MS
    + """
local zset, conn = KEYS[1], KEYS[2]
local ttl = tonumber(ARGV[1])
redis.call('ZADD', zset, now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', zset, '-inf', now - ttl * 1000)
redis.call('EXPIRE', zset, ttl)
if conn then
  if ARGV[3] ~= '' then
    redis.call('SET', conn, ARGV[3], 'EX', ttl)
  else
    redis.call('EXPIRE', conn, ttl)
  end
end
return now
"""
)

# KEYS: the online zset, then (single Redis only) each session's connection key; ARGV: the
# session ids, same order.
_get_script = LuaScript(
    _NOW_MS
    + """
local out = {}
for i, id in ipairs(ARGV) do
  local score = redis.call('ZSCORE', KEYS[1], id)
  local conn = false
  if KEYS[i + 1] then conn = redis.call('GET', KEYS[i + 1]) end
  if score then out[i] = {now - tonumber(score), conn} else out[i] = {-1, conn} end
end
return out
"""
)

_online_script = LuaScript(
    _NOW_MS
    + """
local floor = now - tonumber(ARGV[1]) * 1000
local limit = tonumber(ARGV[2])
local count = redis.call('ZCOUNT', KEYS[1], floor, '+inf')
if limit < 0 then return {count} end
local ids = redis.call('ZRANGE', KEYS[1], '+inf', floor, 'BYSCORE', 'REV', 'LIMIT', 0, limit)
return {count, ids}
"""
)

PresenceState = Literal["online", "offline", "unknown"]


@dataclass(frozen=True, slots=True)
class Presence:
    state: PresenceState
    heartbeat_age_seconds: float | None  # None when never seen (or expired) or unknown
    connection_id: str | None


def presence_heartbeat(*, session_id: str, connection_id: str | None = None) -> bool:
    """Mark ``session_id`` online now (one round trip). Returns False when Redis is unavailable.

    ``connection_id`` records which WebSocket connection is heartbeating; omitted, the recorded
    one (if any) is kept alive. Redis down: returns False, logged and counted; never raises —
    a missed heartbeat only makes the session look "unknown" to the console.
    """
    together = scripts_may_cross_slots()
    conn_key = keys.presence_session_key(session_id=session_id)
    ttl = keys.presence_ttl_seconds()
    try:
        with redis_boundary("presence_heartbeat"):
            _heartbeat_script(keys=[keys.presence_online_key()] + ([conn_key] if together else []),
                              args=[ttl, session_id, connection_id or ""])
            if not together:
                if connection_id:
                    redis_connection().set(conn_key, connection_id, ex=ttl)
                else:
                    redis_connection().expire(conn_key, ttl)
    except RedisUnavailable:
        return False
    return True


def presence_get(*, session_id: str) -> Presence:
    """The session's presence: online if it heartbeated within ``PRESENCE_TTL_SECONDS``.

    Redis down: ``Presence("unknown", None, None)``; never raises.
    """
    return presence_get_many(session_ids=[session_id])[session_id]


def presence_get_many(*, session_ids: list[str]) -> dict[str, Presence]:
    """``presence_get`` for many sessions in one round trip (a console page lists 25 or more)."""
    ids = list(dict.fromkeys(session_ids))
    if not ids:
        return {}
    together = scripts_may_cross_slots()
    conn_keys = [keys.presence_session_key(session_id=i) for i in ids]
    try:
        with redis_boundary("presence_get"):
            answers = _get_script(keys=[keys.presence_online_key()] + (conn_keys if together else []), args=ids)
            if together:
                conns = [conn for _age, conn in answers]
            else:
                # One GET per key, pipelined: the cluster client sends each node its share.
                pipe = redis_connection().pipeline(transaction=False)
                for key in conn_keys:
                    pipe.get(key)
                conns = pipe.execute()
    except RedisUnavailable:
        unknown = Presence(state="unknown", heartbeat_age_seconds=None, connection_id=None)
        return {i: unknown for i in ids}
    return {i: _presence_of(int(age_ms), conn) for i, (age_ms, _), conn in zip(ids, answers, conns, strict=True)}


def _presence_of(age_ms: int, conn: bytes | None) -> Presence:
    if age_ms < 0:
        return Presence(state="offline", heartbeat_age_seconds=None, connection_id=None)
    age = age_ms / 1000
    # A stale entry may linger until the next heartbeat trims it; it still reads as offline.
    if age > keys.presence_ttl_seconds():
        return Presence(state="offline", heartbeat_age_seconds=age, connection_id=None)
    return Presence(state="online", heartbeat_age_seconds=age, connection_id=conn.decode() if conn is not None else None)


def presence_online(*, limit: int = 100) -> list[str] | None:
    """Session ids online now, most recent heartbeat first, at most ``limit``.

    Redis down: None (unknown — not an empty list, which would mean "nobody online").
    """
    try:
        with redis_boundary("presence_online"):
            _count, ids = _online_script(keys=[keys.presence_online_key()], args=[keys.presence_ttl_seconds(), max(0, limit)])
    except RedisUnavailable:
        return None
    return [i.decode() for i in ids]


def presence_online_count() -> int | None:
    """How many sessions are online now. Redis down: None (unknown)."""
    try:
        with redis_boundary("presence_online_count"):
            (count,) = _online_script(keys=[keys.presence_online_key()], args=[keys.presence_ttl_seconds(), -1])
    except RedisUnavailable:
        return None
    return int(count)


def presence_clear(*, session_id: str) -> bool:
    """Mark the session offline now (disconnect, close). Returns False when Redis is unavailable.

    Redis down: logged and counted, no exception; the entry ages out on its own.
    """
    try:
        with redis_boundary("presence_clear"):
            # Not a transaction: the two keys are in different slots on a cluster, and half a
            # clear (either half) reads as offline or ages out.
            pipe = redis_connection().pipeline(transaction=False)
            pipe.zrem(keys.presence_online_key(), session_id)
            pipe.delete(keys.presence_session_key(session_id=session_id))
            pipe.execute()
    except RedisUnavailable:
        return False
    return True
