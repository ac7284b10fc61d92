"""Readiness: can this process serve the product right now? (``GET /readyz``, ``sessions_app.probes``)

DynamoDB is the one dependency the product cannot work without, so it alone decides "ready".
Redis, DAX and the Celery broker each have a documented degraded mode (docs/architecture.md
§Redis, §Read path; a task that cannot be queued is swept up later), so losing one is reported
as ``degraded`` while the process stays ready: taking every target out of the load balancer
because Redis is down would turn a slower product into an outage.

Cost, with a load balancer probing every second from several targets: one round of checks per
``READYZ_CACHE_SECONDS`` per process (concurrent probes wait for the round in progress instead of
starting their own), each round one ConsistentRead GetItem of a key that never exists, one Redis
PING, one broker connection and, with DAX on, one TCP connect. The four checks run in parallel
and the round answers within ``READYZ_TIMEOUT_SECONDS`` whatever the dependencies do.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import urlsplit

from django.conf import settings
from kombu import Connection as BrokerConnection

from .. import dynamo
from ..models import SessionMeta
from ..realtime import redis_boundary, redis_connection

log = logging.getLogger(__name__)

CHECK_OK = "ok"
CHECK_DOWN = "down"
CHECK_DEGRADED = "degraded"  # DAX only: reads go on, straight to DynamoDB
CHECK_DISABLED = "disabled"  # DAX only: DAX_ENDPOINTS is empty

READY = "ready"
DEGRADED = "degraded"
UNAVAILABLE = "unavailable"

# No item has this key (every item's PK starts with one of the keys.py prefixes), so the read
# returns nothing and costs the minimum read capacity.
_PROBE_KEY = {"PK": {"S": "READYZ#probe"}, "SK": {"S": "READYZ#probe"}}
# DAX's ports when an endpoint names none (dax:// unencrypted, daxs:// TLS).
_DAX_DEFAULT_PORTS = {"dax": 8111, "daxs": 9111}

# Errors are shown to anyone who can reach /readyz: a URL's user:password and key=value secrets
# must not be part of them.
_URL_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.-]*://)[^/\s@]*@", re.IGNORECASE)
_SECRET_PARAMS = re.compile(r"\b(password|passwd|pwd|secret|token|key)=[^&\s'\"]+", re.IGNORECASE)
_ERROR_MAX_CHARS = 200


@dataclass(frozen=True)
class Check:
    """One dependency's answer: ``status`` (ok, down, degraded, disabled), how long it took,
    what went wrong (safe to show), and check-specific facts (the DAX breaker's state)."""

    status: str
    ms: float
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Readiness:
    """One round of checks: ``status`` is ready, degraded (DynamoDB up, something else not) or
    unavailable (DynamoDB down)."""

    status: str
    checks: dict[str, Check]

    @property
    def ready(self) -> bool:
        return self.status != UNAVAILABLE


def _deadline() -> float:
    return float(settings.READYZ_TIMEOUT_SECONDS)


def _cache_seconds() -> float:
    return float(settings.READYZ_CACHE_SECONDS)


def safe_error(exc: BaseException) -> str:
    """``Type: message`` of the innermost cause (PynamoDB, the Redis boundary and kombu wrap the
    real failure), with credentials removed and cut to a line."""
    root, depth = exc, 0
    while root.__cause__ is not None and depth < 5:
        root, depth = root.__cause__, depth + 1
    message = " ".join(str(root).split())
    message = _SECRET_PARAMS.sub(r"\1=***", _URL_CREDENTIALS.sub(r"\1***@", message))
    text = f"{type(root).__name__}: {message}" if message else type(root).__name__
    return text if len(text) <= _ERROR_MAX_CHARS else text[: _ERROR_MAX_CHARS - 1] + "…"


# --- the checks: each returns (status, error, detail) or raises -----------------------------------

def _check_dynamodb() -> tuple[str, str | None, dict]:
    # ConsistentRead: routed straight to DynamoDB, never DAX (dynamo.RoutedConnection.route_for),
    # so DAX being up cannot hide DynamoDB being down. A missing table raises (ResourceNotFound):
    # down too, since nothing would work. Timeouts and retries are the connection's own
    # (DYNAMODB_CONNECT_TIMEOUT, DYNAMODB_READ_TIMEOUT, DYNAMODB_MAX_RETRIES); the round's
    # deadline bounds them.
    dynamo.read_raw("GetItem", {"TableName": SessionMeta.Meta.table_name, "Key": _PROBE_KEY, "ConsistentRead": True})
    return CHECK_OK, None, {}


def _check_redis() -> tuple[str, str | None, dict]:
    # The product's own client and pool, so its socket timeout (REDIS_SOCKET_TIMEOUT) applies.
    with redis_boundary("readyz"):
        redis_connection().ping()
    return CHECK_OK, None, {}


def _check_broker() -> tuple[str, str | None, dict]:
    # A connection of its own (not Celery's publishing pool), one attempt, no kombu retry loop;
    # for Redis brokers, establishing it sends a PING. The transport's socket timeout (5 s, meant
    # for a worker's long reads) is shortened to the connect timeout: a broker that accepts TCP
    # but never answers must not hold the probe.
    timeout = min(float(settings.CELERY_BROKER_CONNECTION_TIMEOUT), _deadline())
    options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {})
    for key in ("socket_connect_timeout", "socket_timeout"):
        if key in options:
            options[key] = min(float(options[key]), timeout)
    connection = BrokerConnection(settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options=options)
    try:
        connection.ensure_connection(max_retries=0)  # 0: the first failure is raised, no sleep
    finally:
        connection.release()
    return CHECK_OK, None, {}


def _dax_address(endpoint: str) -> tuple[str, int]:
    """``host:port``, ``dax://host[:port]`` or ``daxs://host[:port]`` → (host, port)."""
    parts = urlsplit(endpoint if "://" in endpoint else f"dax://{endpoint}")
    return parts.hostname or "", parts.port or _DAX_DEFAULT_PORTS.get(parts.scheme, 8111)


def _check_dax() -> tuple[str, str | None, dict]:
    endpoints = list(settings.DAX_ENDPOINTS or [])
    if not endpoints:
        return CHECK_DISABLED, None, {}
    # The breaker is what requests actually see: open (or half-open, waiting for its probe)
    # means this process sends DAX's reads to DynamoDB right now.
    breaker = dynamo.dax_breaker_state()
    detail = {"breaker": breaker}
    if breaker != "closed":
        return CHECK_DEGRADED, f"circuit breaker {breaker}: reads go straight to DynamoDB", detail
    # Closed can also mean "no DAX call since the node died": a TCP connect to the first
    # endpoint (the cluster's discovery address) finds that out without a request.
    timeout = min(float(settings.DAX_REQUEST_TIMEOUT), _deadline())
    try:
        with socket.create_connection(_dax_address(endpoints[0]), timeout=timeout):
            pass
    except OSError as exc:
        return CHECK_DEGRADED, safe_error(exc), detail
    return CHECK_OK, None, detail


# name → (check, the status it gets when it raises or does not answer in time)
_CHECKS: dict[str, tuple[Callable[[], tuple[str, str | None, dict]], str]] = {
    "dynamodb": (_check_dynamodb, CHECK_DOWN),
    "redis": (_check_redis, CHECK_DOWN),
    "dax": (_check_dax, CHECK_DEGRADED),
    "broker": (_check_broker, CHECK_DOWN),
}


# --- running a round ------------------------------------------------------------------------------

_round_lock = threading.Lock()
_cached: tuple[float, Readiness] | None = None
# A check still running from an earlier round (a dependency that hangs until its own timeout) is
# waited for again rather than started once more, so a hung dependency costs one thread, not one
# per probe.
_in_flight: dict[str, Future] = {}
_last_status: dict[str, str] = {}


def _start(name: str, check: Callable[[], tuple[str, str | None, dict]], failure: str) -> Future:
    """Run ``check`` in a thread of its own; the future's result is a :class:`Check`.

    A new daemon thread, not a long-lived pool: the thread must never keep the process from
    exiting while a dependency hangs, and a new thread builds its Django cache client from the
    current settings (cache clients are per thread)."""
    future: Future = Future()

    def run() -> None:
        started = time.perf_counter()
        try:
            status, error, detail = check()
        except Exception as exc:  # whatever a dependency raises, the probe answers
            status, error, detail = failure, safe_error(exc), {}
        future.set_result(Check(status=status, ms=round((time.perf_counter() - started) * 1000, 1),
                                error=error, detail=detail))

    threading.Thread(target=run, name=f"readyz-{name}", daemon=True).start()
    return future


def _run_round() -> Readiness:
    deadline = _deadline()
    started = time.perf_counter()
    futures: dict[str, Future] = {}
    for name, (check, failure) in _CHECKS.items():
        future = _in_flight.get(name)
        if future is None or future.done():
            future = _in_flight[name] = _start(name, check, failure)
        futures[name] = future
    wait(futures.values(), timeout=deadline)
    waited_ms = round((time.perf_counter() - started) * 1000, 1)
    checks: dict[str, Check] = {}
    for name, future in futures.items():
        if future.done():
            checks[name] = future.result()
        else:
            checks[name] = Check(status=_CHECKS[name][1], ms=waited_ms, error=f"no answer within {deadline:g} s")
    _log_changes(checks)
    if checks["dynamodb"].status != CHECK_OK:
        status = UNAVAILABLE
    elif any(c.status not in (CHECK_OK, CHECK_DISABLED) for c in checks.values()):
        status = DEGRADED
    else:
        status = READY
    return Readiness(status=status, checks=checks)


def _log_changes(checks: dict[str, Check]) -> None:
    # Once per change, not once per probe: an outage would otherwise log every second per process.
    for name, check in checks.items():
        previous = _last_status.get(name)
        _last_status[name] = check.status
        if previous == check.status or (previous is None and check.status in (CHECK_OK, CHECK_DISABLED)):
            continue
        if check.status in (CHECK_OK, CHECK_DISABLED):
            log.info("readiness: %s is %s again (was %s)", name, check.status, previous)
        else:
            log.warning("readiness: %s is %s: %s", name, check.status, check.error)


def readiness_check() -> Readiness:
    """This process's readiness, from a round at most ``READYZ_CACHE_SECONDS`` old."""
    global _cached
    with _round_lock:  # concurrent probes share the round in progress
        if _cached is not None and time.monotonic() - _cached[0] < _cache_seconds():
            return _cached[1]
        result = _run_round()
        _cached = (time.monotonic(), result)
        return result


def readiness_cache_clear() -> None:
    """Forget the cached round and any check still running (tests switch dependencies)."""
    global _cached
    with _round_lock:
        _cached = None
        _in_flight.clear()
        _last_status.clear()
