"""Cache-aside for a session's context (response-ready bytes), with read-your-writes.

One hash per session, ``ctx:<session_id>``:

- field ``seq`` — the *hint*: the highest turn seq known to have been written to DynamoDB;
- one field per variant (``t20`` = "last 20 turns", ...) holding ``b"<seq>|" + payload``, where
  seq is the last turn the payload contains.

A payload is served only when it is at least as new as the hint. The append path raises the hint
and drops every variant right after its DynamoDB write (``context_cache_turn_written``), so the
writer's next read misses and goes to the store; ``context_cache_put`` refuses to install a
payload older than the hint, so a reader that loaded before a newer write can't re-install the
old context afterwards. The hint is returned on every read so the store query can be bounded by
it (docs/architecture.md §Read path: a changed bound defeats DAX's query cache).

Limits: if Redis loses the hint (restart, eviction, or ``turn_written`` failing while Redis was
unreachable but kept its data), a stale payload may be served until ``CONTEXT_CACHE_TTL``. A
caller that knows its own last appended seq passes ``min_seq`` to ``context_cache_get`` and gets
read-your-writes regardless.

The read runs as a Lua script rather than a bare HMGET so the hit/miss counter rides in the same
round trip; it must hit the primary anyway (a replica's lag would break read-your-writes). On a
cluster the counter's global ``stats:ctx:<minute>`` bucket is in another slot than the session's
hash, so there the script reads only and the count follows as a second command (``stats_count``).
Every other script here touches the session's hash alone, so each is one slot as it stands.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sessions_app.exceptions import RedisUnavailable

from . import keys
from .client import (
    LuaScript,
    counters_by_minute,
    redis_boundary,
    redis_connection,
    scripts_may_cross_slots,
    stats_count,
)

_HINT = keys.CONTEXT_HINT_FIELD
_STALE = keys.CONTEXT_DAX_STALE_FIELD

_get_script = LuaScript(
    """
local v = redis.call('HMGET', KEYS[1], ARGV[1], ARGV[2], ARGV[5])
local hint, value, stale_until = v[1], v[2], v[3]
local hit = false
if hint and value then
  local bar = string.find(value, '|', 1, true)
  if bar then
    local have = tonumber(string.sub(value, 1, bar - 1))
    local need = math.max(tonumber(hint), tonumber(ARGV[3]))
    hit = have ~= nil and have >= need
  end
end
if KEYS[2] then
  redis.call('HINCRBY', KEYS[2], hit and 'hit' or 'miss', 1)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
local consistent = 0
if stale_until then
  local t = redis.call('TIME')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) < tonumber(stale_until) then consistent = 1 end
end
if hit then return {hint, value, consistent} end
return {hint, false, consistent}
"""
)

_put_script = LuaScript(
    """
local hint = redis.call('HGET', KEYS[1], ARGV[1])
local seq = tonumber(ARGV[3])
if hint and seq < tonumber(hint) then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[4])
if (not hint) or seq > tonumber(hint) then redis.call('HSET', KEYS[1], ARGV[1], ARGV[3]) end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""
)

_turn_written_script = LuaScript(
    """
local v = redis.call('HMGET', KEYS[1], ARGV[1], ARGV[4])
local hint, stale_until = v[1], v[2]
local seq = ARGV[2]
if hint and tonumber(hint) > tonumber(seq) then seq = hint end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], ARGV[1], seq)
if stale_until then redis.call('HSET', KEYS[1], ARGV[4], stale_until) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return seq
"""
)

# Raise the hint only: a cached variant older than the hint is never served, so nothing needs
# dropping, and a variant that already covers ``seq`` stays usable.
_hint_raise_script = LuaScript(
    """
local hint = redis.call('HGET', KEYS[1], ARGV[1])
if hint and tonumber(hint) >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
)

_invalidate_script = LuaScript(
    """
local dropped = 0
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if field ~= ARGV[1] and field ~= ARGV[2] then
    redis.call('HDEL', KEYS[1], field)
    dropped = dropped + 1
  end
end
return dropped
"""
)


@dataclass(frozen=True, slots=True)
class CacheRead:
    """``payload``: the cached bytes, or None (miss). ``hint``: highest seq known written, or None.

    ``degraded``: Redis was unavailable; load from the store and don't expect ``put`` to stick.
    ``consistent``: the session changed behind the app's back recently (the change feed said so,
    :func:`context_cache_external_change`), so DAX may still hold an older copy of its items:
    read the store strongly consistent.
    """

    payload: bytes | None
    hint: int | None
    degraded: bool = False
    consistent: bool = False


@dataclass(frozen=True, slots=True)
class CacheMinute:
    minute_start: int
    hits: int
    misses: int


def _check_variant(variant: str) -> str:
    if not variant or variant in (_HINT, _STALE):
        raise ValueError(f"invalid context cache variant {variant!r}")
    return variant


def _stats_key_now() -> str:
    return keys.stats_context_key(bucket=keys.stats_bucket(epoch_seconds=time.time()))


def context_cache_get(*, session_id: str, variant: str, min_seq: int | None = None) -> CacheRead:
    """Read the cached ``variant`` of the session's context (one round trip).

    Served only if the hint exists and the payload covers it (and ``min_seq``, when given: the
    caller's own last appended seq). Counts a hit or miss for the console.
    Redis down: ``CacheRead(None, None, degraded=True)``, logged and counted; never raises.
    """
    counted_here = scripts_may_cross_slots()
    script_keys = [keys.context_key(session_id=session_id)] + ([_stats_key_now()] if counted_here else [])
    try:
        with redis_boundary("context_cache_get"):
            hint, value, consistent = _get_script(
                keys=script_keys,
                args=[_HINT, _check_variant(variant), -1 if min_seq is None else int(min_seq), keys.stats_ttl_seconds(),
                      _STALE],
            )
    except RedisUnavailable:
        return CacheRead(payload=None, hint=None, degraded=True)
    if not counted_here:
        stats_count(operation="context_cache_stats_count", key=_stats_key_now(),
                    field="hit" if value is not None else "miss", ttl_seconds=keys.stats_ttl_seconds())
    payload = value[value.index(b"|") + 1 :] if value is not None else None
    return CacheRead(payload=payload, hint=int(hint) if hint is not None else None, consistent=bool(consistent))


def context_cache_put(*, session_id: str, variant: str, seq: int, payload: bytes) -> bool:
    """Install ``payload`` (which contains turns up to ``seq``) unless a newer write is known.

    Returns True if stored. False when ``seq`` is older than the hint (a write landed after this
    reader loaded: installing it would hide that write) or when Redis is unavailable (logged and
    counted; never raises). Raises the hint to ``seq`` and refreshes ``CONTEXT_CACHE_TTL``.
    """
    try:
        with redis_boundary("context_cache_put"):
            stored = _put_script(
                keys=[keys.context_key(session_id=session_id)],
                args=[_HINT, _check_variant(variant), int(seq), b"%d|" % int(seq) + payload, keys.context_ttl_seconds()],
            )
    except RedisUnavailable:
        return False
    return bool(stored)


def context_cache_turn_written(*, session_id: str, seq: int) -> None:
    """Record that turn ``seq`` is durably written: raise the hint, drop every cached variant.

    Call right after the DynamoDB write succeeds, before answering the writer. Redis down:
    logged and counted, no exception (see the module docstring for what that costs).
    """
    try:
        with redis_boundary("context_cache_turn_written"):
            _turn_written_script(keys=[keys.context_key(session_id=session_id)],
                                 args=[_HINT, int(seq), keys.context_ttl_seconds(), _STALE])
    except RedisUnavailable:
        pass


def context_cache_hint_raise(*, session_id: str, seq: int) -> None:
    """Make sure the hint is at least ``seq`` (a replayed append: its first attempt may have
    committed and died before :func:`context_cache_turn_written`). Redis down: logged and counted,
    no exception."""
    _hint_update(_hint_raise_script, "context_cache_hint_raise", session_id=session_id, seq=seq)


def _hint_update(script: LuaScript, operation: str, *, session_id: str, seq: int) -> None:
    try:
        with redis_boundary(operation):
            script(keys=[keys.context_key(session_id=session_id)], args=[_HINT, int(seq), keys.context_ttl_seconds()])
    except RedisUnavailable:
        pass


# An outside change (the change feed saw it): drop the variants, raise the hint to the session's
# turn count if that grew, and open the "read consistently" window. KEYS[1]: the context hash.
# ARGV: hint field, window field, seq (or -1), window length ms, TTL.
_external_change_script = LuaScript(
    """
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  if field ~= ARGV[1] and field ~= ARGV[2] then redis.call('HDEL', KEYS[1], field) end
end
local seq = tonumber(ARGV[3])
local hint = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if seq > hint then redis.call('HSET', KEYS[1], ARGV[1], seq) end
local window = tonumber(ARGV[4])
if window > 0 then
  local t = redis.call('TIME')
  local untl = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + window
  local was = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
  if untl > was then redis.call('HSET', KEYS[1], ARGV[2], untl) end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  local ttl = math.max(tonumber(ARGV[5]), math.ceil(window / 1000))
  if redis.call('TTL', KEYS[1]) < ttl then redis.call('EXPIRE', KEYS[1], ttl) end
end
return 1
"""
)


def context_cache_external_change(*, session_id: str, seq: int | None, dax_stale_seconds: float) -> None:
    """A change this app did not make reached the session (the change feed saw it: a TTL
    removal, a hand edit, another writer): drop every cached variant, raise the hint to ``seq``
    (the session's turn count, when known), and for ``dax_stale_seconds`` make readers read the
    store strongly consistent — the outside write did not go through DAX, whose item cache may
    serve the old item until its TTL. Redis down: raises ``RedisUnavailable`` (the change feed
    retries the record)."""
    with redis_boundary("context_cache_external_change"):
        _external_change_script(
            keys=[keys.context_key(session_id=session_id)],
            args=[_HINT, _STALE, -1 if seq is None else int(seq), int(dax_stale_seconds * 1000),
                  keys.context_ttl_seconds()],
        )


def context_cache_invalidate(*, session_id: str) -> None:
    """Drop every cached variant but keep the hint (summary written, session closed, ...).

    Redis down: logged and counted, no exception.
    """
    try:
        with redis_boundary("context_cache_invalidate"):
            _invalidate_script(keys=[keys.context_key(session_id=session_id)], args=[_HINT, _STALE])
    except RedisUnavailable:
        pass


def context_cache_forget(*, session_id: str) -> None:
    """Delete the session's whole cache entry, hint included (privacy delete).

    Redis down: raises ``RedisUnavailable`` — a privacy delete must know it did not happen.
    """
    with redis_boundary("context_cache_forget"):
        redis_connection().delete(keys.context_key(session_id=session_id))


def context_cache_stats(*, minutes: int = 15) -> list[CacheMinute] | None:
    """Hits and misses per minute for the last ``minutes`` minutes, newest first. Redis down: None."""
    rows = counters_by_minute(operation="context_cache_stats", key_for=lambda b: keys.stats_context_key(bucket=b),
                              fields=("hit", "miss"), minutes=minutes)
    if rows is None:
        return None
    return [CacheMinute(minute_start=b, hits=h, misses=m) for b, (h, m) in rows]


def context_cache_hit_ratio(*, minutes: int = 15) -> float | None:
    """Hits / lookups over the last ``minutes`` minutes; None with no lookups or Redis down."""
    stats = context_cache_stats(minutes=minutes)
    if stats is None:
        return None
    hits = sum(m.hits for m in stats)
    total = hits + sum(m.misses for m in stats)
    return hits / total if total else None
