"""Fleet-wide counts per minute, counted from the change feed (every writer's changes, whichever
process made them), not by the process that served a request.

``fleet_count`` adds one count per change to the minute its change happened in (``stats:fleet:``
hashes, a day of TTL). The stream delivers at least once, so each count names what it counts —
the session and the turn's seq, or that the session started / closed / expired — and a per-session
``fleet:seen:`` hash remembers what was counted: a redelivered record adds nothing. Records of one
session reach the consumer in the order they were written (one partition, one shard), so "the
highest turn counted" is enough for turns.

The script touches many keys: fine on a single-shard Redis / ElastiCache with cluster mode
disabled (see keys.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from . import keys
from .client import LuaScript, counters_by_minute, redis_boundary

# KEYS: pairs (seen hash, minute hash). ARGV: the two TTLs, then per pair: the seen field, the
# value, the mode ("max": count when value exceeds the highest seen; "once": count the first
# time), the minute hash's field.
_count_script = LuaScript(
    """
local counted = 0
for i = 1, #KEYS, 2 do
  local base = 3 + ((i - 1) / 2) * 4
  local field, value, mode, counter = ARGV[base], tonumber(ARGV[base + 1]), ARGV[base + 2], ARGV[base + 3]
  local seen = tonumber(redis.call('HGET', KEYS[i], field) or '-1')
  local fresh
  if mode == 'max' then fresh = value > seen else fresh = seen < 0 end
  if fresh then
    redis.call('HSET', KEYS[i], field, value)
    redis.call('HINCRBY', KEYS[i + 1], counter, 1)
    redis.call('EXPIRE', KEYS[i + 1], ARGV[2])
    counted = counted + 1
  end
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return counted
"""
)


@dataclass(frozen=True, slots=True)
class FleetCount:
    """One thing to count once: ``counter`` in the minute of ``at_epoch``, for ``session_id``.

    ``mode="max"`` with ``value`` = the turn's (or summary's) seq counts each new seq once;
    ``mode="once"`` counts ``seen_field`` the first time only (a session starts once)."""

    session_id: str
    seen_field: str
    value: int
    mode: Literal["max", "once"]
    counter: str
    at_epoch: float


def fleet_count(*, counts: Sequence[FleetCount]) -> int:
    """Count each of ``counts`` unless already counted; returns how many were new. One round
    trip. Redis down: raises ``RedisUnavailable`` (the consumer retries the batch)."""
    if not counts:
        return 0
    key_list: list[str] = []
    args: list[object] = [keys.fleet_seen_ttl_seconds(), keys.stats_ttl_seconds()]
    for c in counts:
        key_list += [keys.fleet_seen_key(session_id=c.session_id),
                     keys.fleet_key(bucket=keys.stats_bucket(epoch_seconds=c.at_epoch))]
        args += [c.seen_field, int(c.value), c.mode, c.counter]
    with redis_boundary("fleet_count"):
        return int(_count_script(keys=key_list, args=args))


@dataclass(frozen=True, slots=True)
class FleetMinute:
    minute_start: int
    counts: dict[str, int]


def fleet_stats(*, fields: Sequence[str], minutes: int = 15) -> list[FleetMinute] | None:
    """``fields`` of the fleet counters for the last ``minutes`` minutes, newest first (zeros
    where nothing was counted). Redis down: None (unknown)."""
    fields = tuple(fields)
    rows = counters_by_minute(operation="fleet_stats", key_for=lambda b: keys.fleet_key(bucket=b),
                              fields=fields, minutes=minutes)
    if rows is None:
        return None
    return [FleetMinute(minute_start=b, counts=dict(zip(fields, values, strict=True))) for b, values in rows]
