"""The ONE module that builds DynamoDB and DAX connections.

PynamoDB models get their connection from :func:`table_connection`. That connection is a
:class:`RoutedConnection`: with ``DAX_ENDPOINTS`` set, data reads (GetItem, BatchGetItem, Query,
Scan) go to an ``amazondax.AmazonDaxClient`` and so do writes (write-through keeps DAX's item cache
fresh) unless ``DAX_WRITE_THROUGH=0``. Everything else goes to DynamoDB:

* table operations (DAX does not implement them);
* reads with ``ConsistentRead=True`` (DAX would pass them through anyway; going direct saves a hop);
* TransactGetItems (DAX passes them through uncached);
* any call while DAX is unreachable: a circuit breaker opens after ``DAX_BREAKER_FAILURES``
  consecutive failures and lets one probe through every ``DAX_BREAKER_RESET_SECONDS``.

Only failures that mean "DAX is unreachable or unhealthy" fall back; conditional-check, validation
and throttling errors are answers, not failures, and are raised as usual.

DAX background: https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/DAX.consistency.html
PynamoDB has no DAX support of its own (pynamodb/PynamoDB#687).
"""

from __future__ import annotations

import atexit
import contextvars
import copy
import logging
import os
import socket
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from pynamodb.connection.base import BOTOCORE_EXCEPTIONS, Connection, MetaTable
from pynamodb.connection.table import TableConnection
from pynamodb.exceptions import (
    GetError,
    PynamoDBConnectionError,
    PynamoDBException,
    QueryError,
    TableError,
    TransactWriteError,
)

from .exceptions import StoreUnavailable
from .observability import metrics

log = logging.getLogger(__name__)

DATA_READS = frozenset({"GetItem", "BatchGetItem", "Query", "Scan"})
DATA_WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
_SNAKE = {
    "GetItem": "get_item", "BatchGetItem": "batch_get_item", "Query": "query", "Scan": "scan",
    "PutItem": "put_item", "UpdateItem": "update_item", "DeleteItem": "delete_item",
    "BatchWriteItem": "batch_write_item", "TransactWriteItems": "transact_write_items",
}
# DAX error codes that mean the node, not the request, is the problem.
_DAX_UNAVAILABLE_CODES = frozenset({
    "NoRouteException", "ConnectionException", "EndOfStreamException", "DecoderException",
    "MalformedResultException", "UnrecognizedClientException",
})

# The route a call actually took. Provenance labels (X-Context-Source, the console's "read
# from") come from these as observed, never from what the settings or the breaker predict.
ROUTE_DAX = "dax"
ROUTE_DYNAMODB = "dynamodb"  # DAX off or bypassed, or an operation DAX does not serve
ROUTE_CONSISTENT = "dynamodb-consistent"  # ConsistentRead=True: DAX would only pass it through
ROUTE_FALLBACK = "fallback"  # meant for DAX, sent to DynamoDB because DAX failed or the breaker is open
ROUTES = (ROUTE_DAX, ROUTE_DYNAMODB, ROUTE_CONSISTENT, ROUTE_FALLBACK)
# For a block of several calls: the least-cached route involved is what the answer rests on.
_ROUTE_WEIGHT = {ROUTE_DAX: 0, ROUTE_DYNAMODB: 1, ROUTE_CONSISTENT: 2, ROUTE_FALLBACK: 3}


# --- what a DynamoDB error means ------------------------------------------------------------------
# The one place that reads DynamoDB error codes; services ask these questions instead.
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html

CONDITION_FAILED = "ConditionalCheckFailedException"
IDEMPOTENT_MISMATCH = "IdempotentParameterMismatchException"
# A transaction that lost a race: a condition failed, or another transaction held an item.
_RACE_CODES = frozenset({"TransactionCanceledException", "TransactionConflictException"})
# "Try again later", not "your request is wrong".
_TRANSIENT_CODES = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "TransactionInProgressException",
    "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded",
})


def _error_codes(exc: PynamoDBException) -> set[str]:
    codes = {exc.cause_response_code}
    if isinstance(exc, TransactWriteError):
        codes |= {r.code for r in (exc.cancellation_reasons or []) if r is not None}
    return codes - {None}


def is_condition_failed(exc: PynamoDBException) -> bool:
    """A single-item write whose condition did not hold (the item is not what we expected)."""
    return exc.cause_response_code == CONDITION_FAILED


def is_race_lost(exc: PynamoDBException) -> bool:
    """A transaction cancelled by a condition or a concurrent transaction: re-read and decide.
    (Which condition failed is not always reported: DAX drops CancellationReasons.)"""
    return exc.cause_response_code in _RACE_CODES


def is_token_reused(exc: PynamoDBException) -> bool:
    """A transaction whose ``ClientRequestToken`` DynamoDB has already seen in another encoding.
    DAX re-encodes the transactions it forwards (its own expression placeholders), so when a
    write-through times out and the same request is sent to DynamoDB directly, this is the
    answer: the attempt did reach DynamoDB once already. Whether it committed is not said —
    re-read and decide, as after a lost race."""
    return exc.cause_response_code == IDEMPOTENT_MISMATCH


def is_transient(exc: PynamoDBException) -> bool:
    """Throttling or a DynamoDB-side failure, also when it is the reason a transaction was
    cancelled: the same request may succeed later."""
    return bool(_error_codes(exc) & _TRANSIENT_CODES)


def store_unavailable(operation: str, exc: PynamoDBException) -> StoreUnavailable | None:
    """The project's exception for a transient ``exc`` (to raise ``from exc``), else None."""
    if is_transient(exc):
        return StoreUnavailable(f"DynamoDB {operation}: {exc.cause_response_code}: {exc}")
    return None


# --- metrics ------------------------------------------------------------------------------------
# Every call is counted by operation, route and outcome and timed by operation and route in the
# project's Prometheus metrics (sessions_app/observability/metrics.py): the numbers /metrics
# exposes are the ones the console shows.

_THROTTLED = frozenset({
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "TransactionInProgressException",
})


def _outcome(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        if code in (CONDITION_FAILED, "TransactionCanceledException"):
            return "condition_failed"
        if code in _THROTTLED:
            return "throttled"
        return "server_error" if status >= 500 or code in _TRANSIENT_CODES else "client_error"
    return "unavailable"


def _observe(operation: str, route: str, started: float, exc: BaseException | None = None) -> None:
    if metrics.ENABLED:
        metrics.child(metrics.DYNAMODB_REQUEST_SECONDS, operation, route).observe(time.perf_counter() - started)
        metrics.child(metrics.DYNAMODB_REQUESTS, operation, route, _outcome(exc)).inc()


def route_calls() -> dict[str, int]:
    """Calls per route (the ``ROUTE_*`` names) counted so far, summed over operations and
    outcomes — as ``mangaassist_dynamodb_requests_total`` reports them."""
    calls: dict[str, int] = {}
    for name, labels, value in metrics.samples("mangaassist_dynamodb_requests"):
        if name == "mangaassist_dynamodb_requests_total":
            calls[labels["route"]] = calls.get(labels["route"], 0) + int(value)
    return calls


# --- observed routes ------------------------------------------------------------------------------

class RouteRecord:
    """The routes the DynamoDB calls inside one :func:`routes_recorded` block took, in order."""

    def __init__(self) -> None:
        self.routes: list[str] = []

    @property
    def label(self) -> str | None:
        """None when no call was made; otherwise the least-cached route any call took."""
        return max(self.routes, key=_ROUTE_WEIGHT.__getitem__) if self.routes else None


_recording: contextvars.ContextVar[tuple[RouteRecord, ...]] = contextvars.ContextVar("dynamo_routes", default=())


@contextmanager
def routes_recorded() -> Iterator[RouteRecord]:
    """Record the route of every call made in this block (this thread/task only; blocks nest,
    and an inner block's calls count for the outer one too)."""
    record = RouteRecord()
    token = _recording.set(_recording.get() + (record,))
    try:
        yield record
    finally:
        _recording.reset(token)


def _route_taken(route: str) -> None:
    for record in _recording.get():
        record.routes.append(route)


# --- circuit breaker ----------------------------------------------------------------------------

class CircuitBreaker:
    """Closed → open after ``failures`` consecutive failures; after ``reset_seconds`` one caller
    is let through as a probe (half-open); its success closes the breaker, its failure re-opens it."""

    def __init__(self, *, failures: int, reset_seconds: float, clock=time.monotonic):
        self.failures_to_open = failures
        self.reset_seconds = reset_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.reset_seconds:
                return "half-open"
            return "open"

    def allow(self) -> bool:
        with self._lock:
            if self._opened_at is None:
                return True
            if self._probing or self._clock() - self._opened_at < self.reset_seconds:
                return False
            self._probing = True
            return True

    def record_success(self) -> None:
        with self._lock:
            was_open = self._opened_at is not None
            self._failures = 0
            self._opened_at = None
            self._probing = False
        if was_open:
            self.on_change("closed")

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            opened = self._probing or self._failures >= self.failures_to_open
            if opened:
                self._opened_at = self._clock()
            self._probing = False
        if opened:
            self.on_change("open")

    def on_change(self, state: str) -> None:
        """The breaker closed or (re-)opened; the DAX breaker reports it as a metric."""


# --- DAX client (one per process, built lazily after fork) ---------------------------------------

class _DaxState:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.pid: int | None = None
        self.client: Any = None
        self.endpoints: tuple[str, ...] = ()
        self.breaker: CircuitBreaker | None = None


_dax = _DaxState()


class _DaxUnavailable(Exception):
    """Internal: DAX could not serve the call; the caller falls back to DynamoDB."""


class _DaxBreaker(CircuitBreaker):
    def on_change(self, state: str) -> None:
        metrics.dax_breaker_state(state)


def _dax_breaker() -> CircuitBreaker:
    if _dax.breaker is None:
        _dax.breaker = _DaxBreaker(
            failures=settings.DAX_BREAKER_FAILURES, reset_seconds=settings.DAX_BREAKER_RESET_SECONDS
        )
    return _dax.breaker


def dax_enabled() -> bool:
    return bool(settings.DAX_ENDPOINTS)


def _dax_client():
    """The process's DAX client, created on first use. The client starts background threads
    (endpoint refresh, health checks), which do not survive fork(): a pre-fork server (gunicorn)
    or Celery's prefork pool must not inherit one, hence the pid check."""
    endpoints = tuple(settings.DAX_ENDPOINTS)
    pid = os.getpid()
    if _dax.client is not None and _dax.pid == pid and _dax.endpoints == endpoints:
        return _dax.client
    with _dax.lock:
        if _dax.client is not None and _dax.pid == pid and _dax.endpoints == endpoints:
            return _dax.client
        if _dax.pid == pid and _dax.client is not None:
            _close_quietly(_dax.client)
        from amazondax import AmazonDaxClient  # imported lazily: it is only needed with DAX on

        from . import dax_client_tuning

        dax_client_tuning.apply(settings.DAX_CLIENT_TUNING)
        timeout = settings.DAX_REQUEST_TIMEOUT
        try:
            client = AmazonDaxClient(
                endpoints=list(endpoints),
                region_name=settings.AWS_REGION,
                config=Config(connect_timeout=timeout, read_timeout=timeout, retries={"max_attempts": 1}),
            )
        except Exception as exc:  # construction fails fast with NoRouteException when no node answers
            raise _DaxUnavailable(str(exc)) from exc
        _dax.client, _dax.pid, _dax.endpoints = client, pid, endpoints
        return client


def _close_quietly(client) -> None:
    try:
        client.close()
    except Exception:  # closing a client whose node is gone may raise; nothing to do about it
        log.debug("closing DAX client failed", exc_info=True)


def dax_close() -> None:
    """Close this process's DAX client (on shutdown, or when tests switch endpoints)."""
    with _dax.lock:
        if _dax.client is not None and _dax.pid == os.getpid():
            _close_quietly(_dax.client)
        _dax.client, _dax.pid, _dax.endpoints, _dax.breaker = None, None, (), None
    if metrics.ENABLED:
        metrics.DAX_BREAKER_OPEN.set(0)  # the next client starts with a closed breaker


# The DAX client closes through a thread pool; interpreter exit shuts thread pools down before
# plain atexit handlers run, so register where thread-pool users are closed first.
if hasattr(threading, "_register_atexit"):
    threading._register_atexit(dax_close)
else:  # pragma: no cover - CPython < 3.9
    atexit.register(dax_close)


def dax_breaker_state() -> str:
    return _dax_breaker().state if dax_enabled() else "disabled"


def _is_dax_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, (OSError, socket.timeout, TimeoutError, BotoCoreError)):
        return True
    if isinstance(exc, ClientError):
        code = getattr(exc, "code", None) or exc.response.get("Error", {}).get("Code")
        if code in _DAX_UNAVAILABLE_CODES:
            return True
        codes = getattr(exc, "codes", None)
        # DAX error classes 1 (retryable server) and 2 (recoverable: wait for the cluster) are
        # about the node; class 4 is about the request.
        return bool(codes) and codes[0] in (1, 2)
    return False


def _request_copy(value):
    """A copy of a request's dicts and lists (its leaves — str, bytes, numbers — are immutable
    and shared): what ``copy.deepcopy`` gives for a request, at a fraction of its cost."""
    kind = type(value)
    if kind is dict:
        return {k: _request_copy(v) for k, v in value.items()}
    if kind is list:
        return [_request_copy(v) for v in value]
    if kind in (str, bytes, int, float, bool) or value is None:
        return value
    return copy.deepcopy(value)


class _DaxAdapter:
    """Looks like a botocore client to PynamoDB (``_make_api_call``) but calls DAX."""

    def __init__(self, client) -> None:
        self._client = client

    def _make_api_call(self, operation_name: str, operation_kwargs: dict) -> dict:
        try:
            # The DAX client rewrites the request in place while encoding it; a fallback to
            # DynamoDB must still see the caller's original request.
            return getattr(self._client, _SNAKE[operation_name])(**_request_copy(operation_kwargs))
        except Exception as exc:
            if _is_dax_unavailable(exc):
                raise _DaxUnavailable(f"{operation_name}: {exc}") from exc
            raise


# --- the routed PynamoDB connection -------------------------------------------------------------

_bypass = threading.local()


@contextmanager
def dax_bypassed() -> Iterator[None]:
    """Send this thread's calls straight to DynamoDB for the block: bulk loads would only fill
    DAX's item cache with items nobody is reading yet."""
    previous = getattr(_bypass, "on", False)
    _bypass.on = True
    try:
        yield
    finally:
        _bypass.on = previous


class RoutedConnection(Connection):
    """A PynamoDB Connection that sends each call to DAX or DynamoDB (see module docstring)."""

    @property
    def client(self):
        # PynamoDB's _make_api_call talks to ``self.client``; while a call is routed to DAX,
        # this thread sees the DAX adapter, so PynamoDB's own error translation applies to both.
        routed = getattr(self._local, "routed_client", None)
        return routed if routed is not None else super().client

    def route_for(self, operation_name: str, operation_kwargs: dict) -> str:
        """Where this call is meant to go: ROUTE_DAX, ROUTE_CONSISTENT or ROUTE_DYNAMODB
        (ROUTE_FALLBACK is decided at call time, when DAX fails)."""
        if operation_name in DATA_READS and (operation_kwargs.get("ConsistentRead") or (
            operation_name == "BatchGetItem"
            and any(spec.get("ConsistentRead") for spec in operation_kwargs.get("RequestItems", {}).values())
        )):
            return ROUTE_CONSISTENT
        if not dax_enabled() or getattr(_bypass, "on", False):
            return ROUTE_DYNAMODB
        if operation_name in DATA_READS:
            return ROUTE_DAX
        if operation_name in DATA_WRITES and settings.DAX_WRITE_THROUGH:
            return ROUTE_DAX
        return ROUTE_DYNAMODB

    def _make_api_call(self, operation_name: str, operation_kwargs: dict) -> dict:
        route = self.route_for(operation_name, operation_kwargs)
        if route == ROUTE_DAX:
            breaker = _dax_breaker()
            if breaker.allow():
                started = time.perf_counter()
                try:
                    self._local.routed_client = _DaxAdapter(_dax_client())
                    result = super()._make_api_call(operation_name, operation_kwargs)
                except _DaxUnavailable as exc:
                    breaker.record_failure()
                    _observe(operation_name, ROUTE_DAX, started, exc)
                    log.warning("DAX unavailable, falling back to DynamoDB: %s", exc)
                except Exception as exc:
                    breaker.record_success()  # DAX answered; the request itself was refused
                    _observe(operation_name, ROUTE_DAX, started, exc.__cause__ or exc)
                    _route_taken(ROUTE_DAX)
                    raise
                else:
                    breaker.record_success()
                    _observe(operation_name, ROUTE_DAX, started)
                    _route_taken(ROUTE_DAX)
                    return result
                finally:
                    self._local.routed_client = None
            route = ROUTE_FALLBACK
        _route_taken(route)
        started = time.perf_counter()
        try:
            result = super()._make_api_call(operation_name, operation_kwargs)
        except ClientError as exc:
            _observe(operation_name, route, started, exc)
            raise
        except (BotoCoreError, PynamoDBConnectionError, OSError) as exc:
            _observe(operation_name, route, started, exc)
            raise StoreUnavailable(f"DynamoDB {operation_name} failed: {exc}") from exc
        except Exception as exc:
            _observe(operation_name, route, started, exc.__cause__ or exc)
            raise
        _observe(operation_name, route, started)
        return result


_connections_lock = threading.Lock()
_connections: dict[tuple, RoutedConnection] = {}


def _per_endpoint(cache: dict, build):
    """The cached value for the current endpoint and region, built once (thread-safe)."""
    key = (settings.DYNAMODB_ENDPOINT, settings.AWS_REGION)
    value = cache.get(key)
    if value is None:
        with _connections_lock:
            value = cache.get(key)
            if value is None:
                value = cache[key] = build()
    return value


def connection() -> RoutedConnection:
    """The process-wide routed connection for the current settings (thread-safe: PynamoDB keeps
    a botocore session per thread inside it)."""
    return _per_endpoint(_connections, lambda: RoutedConnection(
        region=settings.AWS_REGION,
        host=settings.DYNAMODB_ENDPOINT,
        connect_timeout_seconds=settings.DYNAMODB_CONNECT_TIMEOUT,
        read_timeout_seconds=settings.DYNAMODB_READ_TIMEOUT,
        max_retry_attempts=settings.DYNAMODB_MAX_RETRIES,
        max_pool_connections=50,
    ))


class RoutedTableConnection(TableConnection):
    """PynamoDB's per-table wrapper, sharing the process-wide routed connection."""

    def __init__(self, *, table_name: str, meta_table: MetaTable) -> None:  # noqa: super() builds its own Connection
        self.table_name = table_name
        self.connection = connection()
        # Every model class shares the one table (and so one schema) on the shared connection.
        try:
            self.connection.get_meta_table(table_name)
        except TableError:
            self.connection.add_meta_table(meta_table)


# How PynamoDB itself wraps a failed read (pynamodb.connection.base), so callers of a raw read
# see the same exceptions (and ``cause_response_code``) as from a model read.
_RAW_READ_ERRORS = {
    "GetItem": (GetError, "Failed to get item"),
    "BatchGetItem": (GetError, "Failed to batch get items"),
    "Query": (QueryError, "Failed to query items"),
}


def read_raw(operation_name: str, request: dict) -> dict:
    """A hand-built data read (GetItem, BatchGetItem, Query): the request dict as DynamoDB's API
    takes it, the reply as it comes (AttributeValue dicts), no PynamoDB model or expression
    builder in between (docs/architecture.md §Read path). It goes through the same routed
    connection as every model call — DAX or DynamoDB by the same rules, the breaker, the
    fallback, the recorded route (:func:`routes_recorded`) and PynamoDB's signals all apply.
    ``request`` is consumed (PynamoDB's dispatch adds to it)."""
    error_class, message = _RAW_READ_ERRORS[operation_name]
    request.setdefault("ReturnConsumedCapacity", "NONE")
    try:
        return connection().dispatch(operation_name, request)
    except BOTOCORE_EXCEPTIONS as exc:
        raise error_class(f"{message}: {exc}", exc) from exc


def table_connection(*, table_name: str, meta_table: MetaTable) -> TableConnection:
    """A PynamoDB TableConnection whose calls go through :func:`connection`."""
    return RoutedTableConnection(table_name=table_name, meta_table=meta_table)


_streams_clients: dict[tuple, Any] = {}


def streams_client():
    """The botocore client of DynamoDB Streams (the change feed), at the same endpoint, region,
    timeouts and retry budget as the table's connection. Shared by the process (botocore
    clients are thread-safe)."""
    import botocore.session

    return _per_endpoint(_streams_clients, lambda: botocore.session.get_session().create_client(
        "dynamodbstreams", region_name=settings.AWS_REGION, endpoint_url=settings.DYNAMODB_ENDPOINT,
        config=Config(connect_timeout=settings.DYNAMODB_CONNECT_TIMEOUT, read_timeout=settings.DYNAMODB_READ_TIMEOUT,
                      retries={"max_attempts": settings.DYNAMODB_MAX_RETRIES, "mode": "standard"}),
    ))


def autoscaling_client():
    """The botocore client of Application Auto Scaling (the table's and its indexes' capacity
    targets: dynamodb_init with DYNAMODB_AUTOSCALING), in the table's region at the service's own
    regional endpoint — DYNAMODB_ENDPOINT is DynamoDB's alone, and DynamoDB Local has no auto
    scaling beside it. Not shared: dynamodb_init builds one per run."""
    import botocore.session

    return botocore.session.get_session().create_client(
        "application-autoscaling", region_name=settings.AWS_REGION,
        config=Config(connect_timeout=settings.DYNAMODB_CONNECT_TIMEOUT, read_timeout=settings.DYNAMODB_READ_TIMEOUT,
                      retries={"max_attempts": settings.DYNAMODB_MAX_RETRIES, "mode": "standard"}),
    )


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ``ClientError`` (None for anything else)."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return None


# Errors of the Streams API that mean "slow down and try again", not "this request is wrong".
STREAMS_THROTTLED = frozenset({
    "LimitExceededException", "ProvisionedThroughputExceededException", "ThrottlingException",
    "RequestLimitExceeded", "InternalServerError", "ServiceUnavailable",
})


def reset_connections() -> None:
    """Forget cached connections (tests switch endpoints and tables; settings changes). Models
    notice on their next call: each rebuilds its TableConnection when :func:`connection` returns
    a different object (``ChatItem._get_connection``)."""
    with _connections_lock:
        _connections.clear()
        _streams_clients.clear()
    dax_close()
