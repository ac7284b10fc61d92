"""Per-customer sliding-window rate limit: one Lua script, one round trip, Redis's clock.

The window is a sorted set of the turns counted in the last ``window_seconds`` (member: a unique
token, score: Redis ``TIME`` in microseconds). The script trims expired entries, counts, and adds
the new entry only when it fits, so a denied request never extends its own lockout and N
concurrent callers can never be allowed more than ``limit`` times: Redis runs scripts one at a
time. Using the server's clock means app servers with skewed clocks still share one window.

The console's allowed/denied counter (a global ``stats:rate:<minute>`` bucket) is counted by the
script too on a single Redis. On a cluster that bucket lives in another slot than the customer's
window, so the script touches the window only and the count follows as a second command
(``stats_count``): the decision stays exact and atomic, the graph may miss a count if Redis goes
away between the two.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

from django.conf import settings

from sessions_app.exceptions import RateLimited, RedisUnavailable

from sessions_app.observability import metrics

from . import keys
from .client import LuaScript, counters_by_minute, redis_boundary, scripts_may_cross_slots, stats_count

# `{now}` is the only line that differs between the production script and the test-only one:
# production reads Redis TIME; tests pin the clock to drive the same logic through exact instants.
_HIT_BODY = """
local key, stats = KEYS[1], KEYS[2]
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local token = ARGV[3]
local stats_ttl = tonumber(ARGV[4])
{now}
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
local count = redis.call('ZCARD', key)
local allowed = 0
if count < limit then
  redis.call('ZADD', key, now, token)
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
  count = count + 1
  allowed = 1
end
local reset, retry = 0, 0
local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
if allowed == 0 then
  -- With a lowered limit more than `limit` entries may be counted; the caller may retry
  -- once enough of them have aged out to leave a free slot.
  local nth = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  retry = tonumber(nth[2]) + window - now
end
if stats then
  redis.call('HINCRBY', stats, allowed == 1 and 'allowed' or 'denied', 1)
  redis.call('EXPIRE', stats, stats_ttl)
end
return {allowed, count, reset, retry}
"""

_PEEK_BODY = """
local key = KEYS[1]
local window = tonumber(ARGV[1])
{now}
local floor = now - window + 1
local count = redis.call('ZCOUNT', key, floor, '+inf')
local reset = 0
local oldest = redis.call('ZRANGEBYSCORE', key, floor, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if oldest[2] then reset = tonumber(oldest[2]) + window - now end
return {count, reset}
"""

_SERVER_NOW = "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000000 + tonumber(t[2])"

_hit_script = LuaScript(_HIT_BODY.replace("{now}", _SERVER_NOW))
_peek_script = LuaScript(_PEEK_BODY.replace("{now}", _SERVER_NOW))
# Test-only: the same logic with the clock passed as the last argument (microseconds).
_hit_script_at = LuaScript(_HIT_BODY.replace("{now}", "local now = tonumber(ARGV[5])"))


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one rate-limit check.

    ``reset_seconds``: until the oldest counted turn leaves the window, i.e. until ``remaining``
    next grows (0 when nothing is counted). ``retry_after``: 0 when allowed; otherwise until a
    retry would be allowed. ``degraded``: Redis was unavailable and the request was let through.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    retry_after: float
    degraded: bool = False

    def headers(self) -> dict[str, str]:
        """Response headers for the API (whole seconds, rounded up so clients never retry early).

        Empty for a degraded decision: a quota we could not check is not advertised.
        """
        if self.degraded:
            return {}
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(math.ceil(self.reset_seconds)),
        }
        if not self.allowed:
            out["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return out

    def raise_if_denied(self) -> None:
        if not self.allowed:
            raise RateLimited(
                "Too many turns; retry later.",
                limit=self.limit,
                remaining=self.remaining,
                reset_seconds=self.reset_seconds,
                retry_after=self.retry_after,
            )


@dataclass(frozen=True, slots=True)
class RateMinute:
    minute_start: int  # epoch seconds
    allowed: int
    denied: int


def _resolve(limit: int | None, window_seconds: int | None) -> tuple[int, int]:
    limit = settings.RATE_LIMIT_TURNS if limit is None else limit
    window_seconds = settings.RATE_LIMIT_WINDOW_SECONDS if window_seconds is None else window_seconds
    if limit < 1 or window_seconds < 1:
        raise ValueError("limit and window_seconds must be >= 1")
    return int(limit), int(window_seconds)


def _decision(raw: list[int], *, limit: int) -> RateDecision:
    allowed, count, reset_us, retry_us = (int(v) for v in raw)
    return RateDecision(
        allowed=bool(allowed),
        limit=limit,
        remaining=max(0, limit - count),
        reset_seconds=max(0, reset_us) / 1_000_000,
        retry_after=max(0, retry_us) / 1_000_000,
    )


def _stats_key_now() -> str:
    # The stats bucket uses this process's clock: a turn counted in the neighbouring minute on a
    # skewed host is harmless for a console graph.
    return keys.stats_rate_key(bucket=keys.stats_bucket(epoch_seconds=time.time()))


def _hit_args(customer_id: str, limit: int, window_seconds: int) -> tuple[list[str], list[object]]:
    """KEYS: the window, plus the stats bucket where one script may touch two slots."""
    keys_ = [keys.rate_key(customer_id=customer_id)]
    if scripts_may_cross_slots():
        keys_.append(_stats_key_now())
    args: list[object] = [limit, window_seconds * 1_000_000, uuid.uuid4().hex, keys.stats_ttl_seconds()]
    return keys_, args


def _hit_counted(keys_: list[str], raw: list[int]) -> None:
    """The stats count a cluster's script could not make (see the module docstring)."""
    if len(keys_) == 1:
        stats_count(operation="rate_limit_stats_count", key=_stats_key_now(),
                    field="allowed" if int(raw[0]) else "denied", ttl_seconds=keys.stats_ttl_seconds())


def rate_limit_hit(*, customer_id: str, limit: int | None = None, window_seconds: int | None = None) -> RateDecision:
    """Count one turn for ``customer_id`` if the sliding window has room; report the outcome.

    ``limit``/``window_seconds`` override ``RATE_LIMIT_TURNS``/``RATE_LIMIT_WINDOW_SECONDS``
    (per-key override: pass the customer's own quota). Exact under any concurrency; denied
    requests are not counted. One round trip.

    Redis down: fails open — returns an allowed decision with ``degraded=True`` and
    ``remaining=limit``; the event is logged and counted (``degraded_events()``). Never raises
    for Redis unavailability.
    """
    limit, window_seconds = _resolve(limit, window_seconds)
    keys_, args = _hit_args(customer_id, limit, window_seconds)
    try:
        with redis_boundary("rate_limit_hit"):
            raw = _hit_script(keys=keys_, args=args)
    except RedisUnavailable:
        return RateDecision(allowed=True, limit=limit, remaining=limit, reset_seconds=0.0, retry_after=0.0, degraded=True)
    _hit_counted(keys_, raw)
    decision = _decision(raw, limit=limit)
    if not decision.allowed:
        metrics.count(metrics.RATE_LIMIT_DENIALS, "customer_turns")
    return decision


def _rate_limit_hit_at(*, customer_id: str, now_us: int, limit: int, window_seconds: int) -> RateDecision:
    """Test-only: ``rate_limit_hit`` with the clock pinned to ``now_us``. Never call in the app."""
    keys_, args = _hit_args(customer_id, limit, window_seconds)
    raw = _hit_script_at(keys=keys_, args=[*args, now_us])
    _hit_counted(keys_, raw)
    return _decision(raw, limit=limit)


def rate_limit_peek(*, customer_id: str, limit: int | None = None, window_seconds: int | None = None) -> RateDecision | None:
    """The customer's current window as the next ``rate_limit_hit`` would see it, without counting.

    ``allowed`` says whether a turn sent now would be accepted. For the staff console.
    Redis down: returns None (unknown), logged and counted.
    """
    limit, window_seconds = _resolve(limit, window_seconds)
    try:
        with redis_boundary("rate_limit_peek"):
            raw = _peek_script(keys=[keys.rate_key(customer_id=customer_id)], args=[window_seconds * 1_000_000])
    except RedisUnavailable:
        return None
    count, reset_us = (int(v) for v in raw)
    allowed = count < limit
    return RateDecision(
        allowed=allowed,
        limit=limit,
        remaining=max(0, limit - count),
        reset_seconds=max(0, reset_us) / 1_000_000,
        # Exact only when count == limit (the usual case); a peek is advisory.
        retry_after=0.0 if allowed else max(0, reset_us) / 1_000_000,
    )


def rate_limit_stats(*, minutes: int = 10) -> list[RateMinute] | None:
    """Allowed/denied decisions per minute for the last ``minutes`` minutes, newest first.

    Minutes with no decisions are included with zeros. Redis down: None (unknown).
    """
    rows = counters_by_minute(operation="rate_limit_stats", key_for=lambda b: keys.stats_rate_key(bucket=b),
                              fields=("allowed", "denied"), minutes=minutes)
    if rows is None:
        return None
    return [RateMinute(minute_start=b, allowed=a, denied=d) for b, (a, d) in rows]
