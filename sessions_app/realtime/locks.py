"""Per-session write lock: redis-py's ``Lock`` (random token, compare-and-delete release).

The lock only keeps concurrent appends to one session from burning DynamoDB conditional-write
retries; correctness comes from the conditional write (docs/architecture.md §Write path). That is why losing
the lock — Redis down, or the lock expiring mid-write — is logged and tolerated, never fatal.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from redis import exceptions as rx

from sessions_app.exceptions import RedisUnavailable, SessionLocked

from . import keys
from .client import LuaScript, degraded_event_record, redis_boundary, redis_connection

logger = logging.getLogger("sessions_app.realtime")

# Poll interval while waiting for a contended lock: short relative to SESSION_LOCK_WAIT (0.5 s)
# so a released lock is picked up quickly, long enough not to hammer Redis.
_POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class LockState:
    """What the holder got: ``held`` False only when Redis was unavailable (``degraded``)."""

    held: bool
    degraded: bool


@contextmanager
def session_write_lock(*, session_id: str) -> Iterator[LockState]:
    """Hold the session's write lock for the block.

    Waits up to ``SESSION_LOCK_WAIT`` seconds for a contended lock, then raises ``SessionLocked``
    (HTTP 409). The lock expires after ``SESSION_LOCK_TIMEOUT`` seconds even if the holder dies.

    Redis down (at acquire): yields ``LockState(held=False, degraded=True)`` — the write goes
    ahead unlocked and the conditional write guards it; logged and counted. Release problems
    (the lock expired and maybe was taken by another writer → ``LockNotOwnedError``; Redis went
    away mid-block) are logged, never raised: the block's work has already been done.
    """
    try:
        with redis_boundary("session_write_lock"):
            # Inside the boundary: on a cluster the first redis_connection() of a process reads
            # the slot map. One key, so one slot (redis-py's Lock scripts touch only it).
            lock = redis_connection().lock(
                keys.session_lock_key(session_id=session_id),
                timeout=keys.session_lock_ttl_seconds(),
                sleep=_POLL_SECONDS,
                blocking=True,
                blocking_timeout=settings.SESSION_LOCK_WAIT,
            )
            acquired = lock.acquire()
    except RedisUnavailable:
        yield LockState(held=False, degraded=True)
        return
    if not acquired:
        raise SessionLocked("Another write to this session is in progress; retry shortly.", session_id=session_id)
    try:
        yield LockState(held=True, degraded=False)
    finally:
        try:
            lock.release()
        except rx.LockNotOwnedError:
            logger.warning("session write lock for %s expired before release (held > %ss)", session_id, lock.timeout)
        except rx.RedisError as error:
            degraded_event_record(operation="session_write_lock_release", error=error)


# --- the summary lock -----------------------------------------------------------------------------
# Not redis-py's Lock: its token is the Celery task id, so a redelivered copy of the task whose
# first worker died holding the lock takes it over at once instead of waiting for the TTL.
#
# A run refused because another task holds the lock does not just leave: it marks the lock
# ("<token>|wanted", APPEND keeps the expiry), in the same script that refused it, and the holder
# learns from its release — also one script — whether anyone was refused meanwhile. The two
# cannot interleave, so no refused run falls between the holder's last look and its release.
_WANTED = "|wanted"

_acquire_or_mark = LuaScript("""
local held = redis.call('GET', KEYS[1])
if not held then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return 1
end
if held == ARGV[1] or held == ARGV[1] .. ARGV[3] then
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  return 1
end
if string.sub(held, -string.len(ARGV[3])) ~= ARGV[3] then
  redis.call('APPEND', KEYS[1], ARGV[3])
end
return 0
""")

_release_if_owner = LuaScript("""
local held = redis.call('GET', KEYS[1])
if held == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
if held == ARGV[1] .. ARGV[2] then
  redis.call('DEL', KEYS[1])
  return 2
end
return 0
""")


def summary_lock_acquire(*, session_id: str, token: str, ttl_seconds: int) -> bool:
    """True if the run holding ``token`` may go ahead (the lock is free, or already its own).

    False: another task holds it, and now knows that a run was refused (see
    :func:`summary_lock_release`) — the holder owes the refused run a look at the turns.

    The lock only saves duplicate work; the conditional summary write is the guard. Redis down:
    True (go ahead), logged and counted.
    """
    try:
        with redis_boundary("summary_lock_acquire"):
            return _acquire_or_mark(keys=[keys.summary_lock_key(session_id=session_id)],
                                    args=[token, ttl_seconds, _WANTED]) == 1
    except RedisUnavailable:
        return True


def summary_lock_release(*, session_id: str, token: str) -> bool:
    """Release the lock if ``token`` still holds it. Returns True if a run was refused while it
    was held (its turns may be newer than what the holder summarised), else False — also when
    ``token`` no longer holds it (its TTL, longer than the task's time limit, ran out). Redis
    down: False (nothing could have been refused; the TTL frees the lock)."""
    try:
        with redis_boundary("summary_lock_release"):
            return _release_if_owner(keys=[keys.summary_lock_key(session_id=session_id)], args=[token, _WANTED]) == 2
    except RedisUnavailable:
        return False
