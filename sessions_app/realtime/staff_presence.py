"""Which staff members are looking at a session now (shown on its detail page, so two people do
not answer the same customer without knowing it). One sorted set per session, scored by the
Redis time of each viewer's last ping; entries older than the TTL are trimmed on every write and
ignored by every read, and the set itself expires with the last viewer.

Redis down: a ping is not recorded (False) and the list is unknown (None), never "nobody".
"""

from __future__ import annotations

from dataclasses import dataclass

from sessions_app.exceptions import RedisUnavailable

from . import keys
from .client import LuaScript, redis_boundary

_NOW_MS = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

_ping_script = LuaScript(_NOW_MS + """
local ttl = tonumber(ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl * 1000)
redis.call('EXPIRE', KEYS[1], ttl)
return now
""")

_list_script = LuaScript(_NOW_MS + """
local rows = redis.call('ZRANGE', KEYS[1], now - tonumber(ARGV[1]) * 1000, '+inf', 'BYSCORE', 'WITHSCORES')
local out = {}
for i = 1, #rows, 2 do out[#out + 1] = {rows[i], now - tonumber(rows[i + 1])} end
return out
""")


@dataclass(frozen=True, slots=True)
class StaffViewer:
    username: str
    seen_seconds_ago: float


def staff_viewing_ping(*, session_id: str, username: str) -> bool:
    """``username`` has the session's page open now. False when Redis is unavailable."""
    try:
        with redis_boundary("staff_viewing_ping"):
            _ping_script(keys=[keys.staff_viewing_key(session_id=session_id)],
                         args=[keys.staff_viewing_ttl_seconds(), username])
    except RedisUnavailable:
        return False
    return True


def staff_viewing(*, session_id: str) -> list[StaffViewer] | None:
    """Who has had the session's page open within the TTL, most recent first. Redis down: None."""
    try:
        with redis_boundary("staff_viewing"):
            rows = _list_script(keys=[keys.staff_viewing_key(session_id=session_id)], args=[keys.staff_viewing_ttl_seconds()])
    except RedisUnavailable:
        return None
    viewers = [StaffViewer(username=u.decode(), seen_seconds_ago=int(age) / 1000) for u, age in rows]
    return sorted(viewers, key=lambda v: v.seen_seconds_ago)
