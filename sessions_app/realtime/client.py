"""The Redis connection and the one error boundary around it.

``redis_connection()`` is, on a single Redis (ElastiCache with cluster mode disabled, the
default), django-redis's raw client, so the pool, socket timeouts (``REDIS_SOCKET_TIMEOUT``) and
URL come from ``settings.CACHES["default"]``. django-redis builds its pool without a ``retry``
argument, so redis-py makes one attempt per command: a dead or slow Redis costs at most one
connect/socket timeout per call, never a retry storm.

With ``REDIS_CLUSTER`` on (ElastiCache with cluster mode enabled, any Redis Cluster) it is a
``redis.cluster.RedisCluster`` built here from the same URL (the configuration endpoint), timeouts
and pool size (``max_connections`` per node), cached per process. django-redis 7.0 has no cluster
client. Its cluster-level retry is off too (``retries=0``): a node that fails costs one timeout
and a refresh of the slot map, and the next call goes where the refreshed map says. MOVED/ASK
redirects (resharding, a failover already known to the cluster) are followed regardless. Building
it reads the slot map (I/O), so in cluster mode the first call of a process can fail: every caller
calls ``redis_connection()`` inside ``redis_boundary``, which reports that as Redis unavailable.

On a cluster a script, a transaction or a multi-key command may only touch keys of one hash slot
(keys.py: which keys share a tag, and why). ``scripts_may_cross_slots()`` says whether a script
may also touch a global ``stats:`` bucket beside its own key; when it may not, the caller counts
with ``stats_count`` after the script (one more round trip, not atomic with the decision: the
counters are a console graph).

``redis_boundary()`` turns "Redis is unreachable or unusable" into ``RedisUnavailable`` and records
the event; it also counts and times every call by its call site (``operation``) in the Prometheus
metrics (``mangaassist_redis_request_duration_seconds``, ``mangaassist_redis_errors_total``,
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
from django.conf import settings
from django_redis import get_redis_connection
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.retry import Retry

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


def redis_cluster_enabled() -> bool:
    """``REDIS_CLUSTER``: Redis is a cluster (slot-routed client, one slot per script)."""
    return bool(getattr(settings, "REDIS_CLUSTER", False))


def scripts_may_cross_slots() -> bool:
    """Whether one script or transaction may touch keys of different hash slots: yes on a single
    Redis, never on a cluster (CROSSSLOT)."""
    return not redis_cluster_enabled()


def redis_connection() -> redis.Redis | RedisCluster:
    """The raw redis-py client (shared, thread-safe pool): django-redis's for the ``default``
    cache, or the process's ``RedisCluster`` with ``REDIS_CLUSTER`` on.

    Single Redis: creating it does no I/O, so it never fails because Redis is down; commands on
    it do. Cluster: the first call reads the slot map and raises ``ConnectionError`` when no node
    answers (call it inside ``redis_boundary``).
    """
    if redis_cluster_enabled():
        return _cluster_client()
    return get_redis_connection("default")


# One RedisCluster per (URL, timeouts, pool size): a test or a settings change that re-points the
# cache gets a client of its own, as django-redis keys its pools by URL.
_clusters: dict[tuple, RedisCluster] = {}
_clusters_lock = threading.Lock()


def _cluster_options() -> tuple[str, float | None, float | None, int]:
    cache = settings.CACHES["default"]
    options = cache.get("OPTIONS", {})
    max_connections = options.get("CONNECTION_POOL_KWARGS", {}).get("max_connections", 200)
    return (cache["LOCATION"], options.get("SOCKET_CONNECT_TIMEOUT"), options.get("SOCKET_TIMEOUT"),
            int(max_connections))


def cluster_client_build(url: str, *, connect_timeout: float | None, timeout: float | None,
                         max_connections: int) -> RedisCluster:
    """A new ``RedisCluster`` on ``url`` (reads the slot map: I/O; raises ``ConnectionError``
    when no node answers). ``rediss://`` is TLS, a user/password in the URL is AUTH."""
    try:
        return RedisCluster.from_url(
            url, socket_connect_timeout=connect_timeout, socket_timeout=timeout,
            max_connections=max_connections, retry=Retry(NoBackoff(), 0),
            # Keep refreshing the slot map through the configuration endpoint (a DNS name for every
            # node): ElastiCache replaces nodes, and their addresses, over the cluster's life.
            dynamic_startup_nodes=False,
        )
    except rx.RedisClusterException as error:
        if redis_error_is_unavailability(error):
            raise rx.ConnectionError(f"Redis Cluster at {_redacted(url)} unreachable: {error}") from error
        raise


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.rpartition("@")
    return f"{head.split('://', 1)[0]}://…@{tail}" if sep else url


def _cluster_client() -> RedisCluster:
    options = _cluster_options()
    client = _clusters.get(options)
    if client is not None:
        return client
    # Built outside the lock: when the cluster is unreachable each caller pays its own connect
    # timeout instead of queueing behind the others'.
    url, connect_timeout, timeout, max_connections = options
    built = cluster_client_build(url, connect_timeout=connect_timeout, timeout=timeout,
                                 max_connections=max_connections)
    with _clusters_lock:
        client = _clusters.setdefault(options, built)
    if client is not built:
        built.close()
    return client


def redis_cluster_forget() -> None:
    """Close and forget this process's cluster clients (tests, a settings change)."""
    with _clusters_lock:
        clients = list(_clusters.values())
        _clusters.clear()
    for client in clients:
        client.close()


# A cluster client raises these when no node, or no node of a slot, can be reached.
_CLUSTER_UNREACHABLE = ("Redis Cluster cannot be connected", "All slots are not covered")


def redis_error_is_unavailability(error: BaseException) -> bool:
    if isinstance(error, _UNAVAILABLE + (rx.SlotNotCoveredError,)):
        return True
    if isinstance(error, rx.ResponseError):
        return str(error).lstrip().startswith(_UNAVAILABLE_PREFIXES)
    if isinstance(error, rx.RedisClusterException):
        # Not a RedisError: the cluster client's own exception, raised e.g. when the slot map
        # cannot be refreshed after a connection error (the cause).
        return isinstance(error.__cause__, _UNAVAILABLE) or str(error).startswith(_CLUSTER_UNREACHABLE)
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
    except (rx.RedisError, rx.RedisClusterException) as error:
        if not redis_error_is_unavailability(error):
            _observed(operation, started, "error")
            raise
        _observed(operation, started, "unavailable")
        degraded_event_record(operation=operation, error=error)
        raise RedisUnavailable(f"Redis unavailable during {operation}", operation=operation) from error
    _observed(operation, started, "ok")


def _observed(operation: str, started: float, outcome: str) -> None:
    if metrics.ENABLED:
        metrics.child(metrics.REDIS_REQUEST_SECONDS, operation).observe(time.perf_counter() - started)
        if outcome != "ok":
            metrics.child(metrics.REDIS_ERRORS, operation, outcome).inc()


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
    (empty script cache) needs no action from us; on a cluster EVALSHA goes to the node of the
    keys' slot, SCRIPT LOAD to every primary. The client is looked up on every call because
    django-redis may hand out a different client (per thread, or after a settings change).

    On a cluster every key of one call must hash to one slot (the server refuses CROSSSLOT).
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


def stats_count(*, operation: str, key: str, field: str, ttl_seconds: int) -> None:
    """Add one to ``field`` of the ``stats:`` hash ``key`` (refreshing its TTL): the counting a
    script does itself when ``scripts_may_cross_slots()``. Redis down: the count is lost, logged
    and counted, no exception (a console graph)."""
    try:
        with redis_boundary(operation):
            pipe = redis_connection().pipeline(transaction=False)
            pipe.hincrby(key, field, 1)
            pipe.expire(key, ttl_seconds)
            pipe.execute()
    except RedisUnavailable:
        pass
