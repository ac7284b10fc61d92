"""Fleet-wide counts per minute, counted from the change feed (every writer's changes, whichever
process made them), not by the process that served a request.

``fleet_count`` adds one count per change to the minute its change happened in (``stats:fleet:``
hashes, a day of TTL). The stream delivers at least once, so each count names what it counts —
the session and the turn's seq, or that the session started / closed / expired — and a per-session
``fleet:seen:`` hash remembers what was counted: a redelivered record adds nothing. Records of one
session reach the consumer in the order they were written (one partition, one shard), so "the
highest turn counted" is enough for turns.

On a single Redis one script does it all: for each count, check and mark the session's
``fleet:seen:`` hash and add to the minute's ``stats:fleet:`` hash, atomically — exactly once.

On a cluster the seen hashes (one slot per session) and the minute hashes (global) cannot share a
slot, and putting the minute counters under each session's tag would leave nothing global to read.
So the work is split where it can be: per session, one script checks and marks every count of the
batch for that session (atomic per session, in the batch's order: a turn seq counted once, a
start once), and returns which were fresh; then one pipeline adds the fresh ones to the minute
hashes. Marking comes first, so a redelivered record is still never counted twice; if Redis goes
away between the two steps the consumer retries the batch, finds those counts marked, and they
are missing from the graph (at most once instead of exactly once, for a console graph, in an
outage).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from . import keys
from .client import LuaScript, counters_by_minute, redis_boundary, redis_connection, scripts_may_cross_slots

# Single Redis only (its keys span slots). KEYS: pairs (seen hash, minute hash). ARGV: the two
# TTLs, then per pair: the seen field, the value, the mode ("max": count when value exceeds the
# highest seen; "once": count the first time), the minute hash's field.
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

# Cluster mode, one session: KEYS[1] its seen hash. ARGV: the seen TTL, then per count: the seen
# field, the value, the mode. Returns a 0/1 per count: fresh (now marked) or already counted.
_mark_script = LuaScript(
    """
local fresh = {}
for i = 2, #ARGV, 3 do
  local field, value, mode = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local seen = tonumber(redis.call('HGET', KEYS[1], field) or '-1')
  local new
  if mode == 'max' then new = value > seen else new = seen < 0 end
  if new then
    redis.call('HSET', KEYS[1], field, value)
    fresh[#fresh + 1] = 1
  else
    fresh[#fresh + 1] = 0
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
return fresh
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
    if not scripts_may_cross_slots():
        return _fleet_count_by_session(counts)
    key_list: list[str] = []
    args: list[object] = [keys.fleet_seen_ttl_seconds(), keys.stats_ttl_seconds()]
    for c in counts:
        key_list += [keys.fleet_seen_key(session_id=c.session_id),
                     keys.fleet_key(bucket=keys.stats_bucket(epoch_seconds=c.at_epoch))]
        args += [c.seen_field, int(c.value), c.mode, c.counter]
    with redis_boundary("fleet_count"):
        return int(_count_script(keys=key_list, args=args))


def _fleet_count_by_session(counts: Sequence[FleetCount]) -> int:
    """Cluster mode: mark per session (one slot each), then count what was fresh (module
    docstring)."""
    by_session: dict[str, list[FleetCount]] = {}
    for c in counts:
        by_session.setdefault(c.session_id, []).append(c)
    fresh: Counter[tuple[str, str]] = Counter()
    with redis_boundary("fleet_count"):
        for session_id, mine in by_session.items():
            args: list[object] = [keys.fleet_seen_ttl_seconds()]
            for c in mine:
                args += [c.seen_field, int(c.value), c.mode]
            flags = _mark_script(keys=[keys.fleet_seen_key(session_id=session_id)], args=args)
            for c, flag in zip(mine, flags, strict=True):
                if int(flag):
                    fresh[(keys.fleet_key(bucket=keys.stats_bucket(epoch_seconds=c.at_epoch)), c.counter)] += 1
        if fresh:
            pipe = redis_connection().pipeline(transaction=False)
            for (minute_key, counter), n in sorted(fresh.items()):
                pipe.hincrby(minute_key, counter, n)
            for minute_key in sorted({k for k, _ in fresh}):
                pipe.expire(minute_key, keys.stats_ttl_seconds())
            pipe.execute()
    return sum(fresh.values())


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
