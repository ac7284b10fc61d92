"""The Redis connection and the one error boundary around it.

``redis_connection()`` is django-redis's raw client, so the pool, socket timeouts
(``REDIS_SOCKET_TIMEOUT``) and URL come from ``settings.CACHES["default"]``. django-redis builds
its pool without a ``retry`` argument, so redis-py makes one attempt per command: a dead or slow
Redis costs at most one connect/socket timeout per call, never a retry storm.

``redis_boundary()`` turns "Redis is unreachable or unusable" into ``RedisUnavailable`` and records
the event; it also counts and times every call by its call site (``operation``) in the Prometheus
metrics (``mangaassist_redis_requests_total``, ``…_duration_seconds``,
``mangaassist_redis_degraded_events_total``). Counting happens in the process, never in Redis,
because when Redis is down it is the one place that can't hold the count; ``degraded_events()``
is this process's own tally, which the log throttle uses.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

import redis
from django_redis import get_redis_connection
from redis import exceptions as rx
from redis.commands.core import Script

from sessions_app.exceptions import RedisUnavailable
from sessions_app.observability import metrics

from . import keys

logger = logging.getLogger("sessions_app.realtime")

P = ParamSpec("P")
R = TypeVar("R")

# Errors that mean "this Redis can't serve us right now", as opposed to a bug in our commands.
# redis-py maps the server's error codes to classes (OOM → OutOfMemoryError, LOADING →
# BusyLoadingError, READONLY after a failover → ReadOnlyError, MASTERDOWN → a ClusterDownError).
_UNAVAILABLE = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.OutOfMemoryError,
    rx.ReadOnlyError,
    rx.ClusterDownError,
    rx.TryAgainError,
)
# Failed persistence (stop-writes-on-bgsave-error) has no class of its own.
_UNAVAILABLE_PREFIXES = ("MISCONF",)

# Log at most this often per operation: at 1,000 messages/s a Redis outage would otherwise
# flood the log with identical lines; the counter keeps the exact number.
_LOG_EVERY_SECONDS = 5.0

_lock = threading.Lock()
_events: Counter[str] = Counter()
_last_logged: dict[str, float] = {}


def redis_connection() -> redis.Redis:
    """The raw redis-py client of the ``default`` cache (shared, thread-safe pool).

    Creating it does no I/O, so it never fails because Redis is down; commands on it do.
    """
    return get_redis_connection("default")


def redis_error_is_unavailability(error: BaseException) -> bool:
    if isinstance(error, _UNAVAILABLE):
        return True
    if isinstance(error, rx.ResponseError):
        return str(error).lstrip().startswith(_UNAVAILABLE_PREFIXES)
    return False


def degraded_event_record(*, operation: str, error: BaseException | None = None) -> None:
    """Count one "Redis down" event for ``operation`` and log it (throttled per operation)."""
    now = time.monotonic()
    metrics.count(metrics.REDIS_DEGRADED, operation)
    with _lock:
        _events[operation] += 1
        count = _events[operation]
        last = _last_logged.get(operation)
        should_log = last is None or now - last >= _LOG_EVERY_SECONDS
        if should_log:
            _last_logged[operation] = now
    if should_log:
        logger.warning(
            "redis unavailable during %s (%d events so far in this process): %s: %s",
            operation, count, type(error).__name__ if error else "-", error,
        )


def degraded_events() -> dict[str, int]:
    """How many times each operation degraded because Redis was unavailable, in this process."""
    with _lock:
        return dict(_events)


def degraded_events_reset() -> None:
    """Forget the in-process counters (tests, or a console "reset" button)."""
    with _lock:
        _events.clear()
        _last_logged.clear()


@contextmanager
def redis_boundary(operation: str) -> Iterator[None]:
    """Translate Redis unavailability inside the block into ``RedisUnavailable`` and count it.

    Anything else (a wrong command, a Lua bug, a lock error) propagates unchanged: those are
    bugs to see, not outages to absorb.
    """
    started = time.perf_counter()
    try:
        yield
    except rx.RedisError as error:
        if not redis_error_is_unavailability(error):
            _observed(operation, started, "error")
            raise
        _observed(operation, started, "unavailable")
        degraded_event_record(operation=operation, error=error)
        raise RedisUnavailable(f"Redis unavailable during {operation}", operation=operation) from error
    _observed(operation, started, "ok")


def _observed(operation: str, started: float, outcome: str) -> None:
    if metrics.ENABLED:
        metrics.REDIS_REQUEST_SECONDS.labels(operation).observe(time.perf_counter() - started)
        metrics.REDIS_REQUESTS.labels(operation, outcome).inc()


def redis_guarded(operation: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of ``redis_boundary``."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with redis_boundary(operation):
                return func(*args, **kwargs)

        return wrapper

    return decorate


class LuaScript:
    """A Lua script run through ``register_script`` on the current connection.

    redis-py sends EVALSHA and, on NOSCRIPT, loads the script and retries, so a restarted Redis
    (empty script cache) needs no action from us. The client is looked up on every call because
    django-redis may hand out a different client (per thread, or after a settings change).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._script: Script | None = None

    def __call__(self, *, keys: list[str], args: list[object]) -> object:
        client = redis_connection()
        if self._script is None:
            # Only computes the SHA1; no I/O.
            self._script = client.register_script(self.source)
        return self._script(keys=keys, args=args, client=client)


def counters_by_minute(
    *, operation: str, key_for: Callable[[int], str], fields: tuple[str, ...], minutes: int
) -> list[tuple[int, list[int]]] | None:
    """Per-minute counter hashes (``stats:`` keys) for the last ``minutes`` minutes, newest first:
    ``(minute_start, [value of each field])``, zeros for minutes with nothing counted. One
    pipelined round trip. Redis down: None (unknown)."""
    now = time.time()
    buckets = [keys.stats_bucket(epoch_seconds=now - 60 * i) for i in range(max(1, minutes))]
    try:
        with redis_boundary(operation):
            pipe = redis_connection().pipeline(transaction=False)
            for bucket in buckets:
                pipe.hmget(key_for(bucket), *fields)
            rows = pipe.execute()
    except RedisUnavailable:
        return None
    return [(bucket, [int(v or 0) for v in row]) for bucket, row in zip(buckets, rows, strict=True)]
