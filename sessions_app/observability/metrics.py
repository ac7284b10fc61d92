"""The product's Prometheus metrics: one definition per number, every name ``mangaassist_…``.

prometheus-client, in its multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` names a directory
(the variable must be set before the first import of prometheus_client: gunicorn's config, `make
run` and the Celery/consumer processes get it from the environment). Then every process — each
gunicorn worker, each Celery pool process, beat, the stream consumer, the SSE server — writes its
own memory-mapped file there and ``/metrics`` (or the console) adds them up. Without the variable
each process counts for itself only (a shell, a test), which ``aggregate_mode()`` says.

Labels are bounded sets chosen by code (a route pattern, an operation name, an outcome word),
never a session or customer id. ``METRICS_ENABLED=0`` turns every recording call into a no-op
(the benchmark's "off" side, bench/s11_metrics.py); the definitions stay, so code never asks.

Histograms are in seconds (Prometheus base units). Buckets: the product's latencies run from
0.2 ms (a Redis hit) to seconds (a summary), so one ladder serves requests and calls.
"""

from __future__ import annotations

import atexit
import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

# prometheus-client picks its mode when it is first imported, from the bare presence of the
# variable: an empty value would put the files in the working directory. Empty means unset.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR", "").strip():
    os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
else:
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest  # noqa: E402
from prometheus_client import REGISTRY as _PROCESS_REGISTRY  # noqa: E402
from prometheus_client.metrics_core import Metric  # noqa: E402

ENABLED = os.environ.get("METRICS_ENABLED", "1").strip().lower() not in {"0", "false", "no", "off"}
MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)

# --- definitions ------------------------------------------------------------------------------------

HTTP_REQUEST_SECONDS = Histogram(
    "mangaassist_http_request_duration_seconds",
    "Django requests by URL pattern (route), method and status code; /metrics and the health "
    "probes are not counted.",
    ["route", "method", "status"], buckets=LATENCY_BUCKETS)

DYNAMODB_REQUESTS = Counter(
    "mangaassist_dynamodb_requests_total",
    "DynamoDB/DAX calls by operation, route taken (dax, dynamodb, dynamodb-consistent, fallback) "
    "and outcome (ok, condition_failed, throttled, client_error, server_error, unavailable).",
    ["operation", "route", "outcome"])
DYNAMODB_REQUEST_SECONDS = Histogram(
    "mangaassist_dynamodb_request_duration_seconds",
    "DynamoDB/DAX call latency by operation and route (a DAX attempt that fell back is counted on "
    "route dax, outcome unavailable, and again on route fallback).",
    ["operation", "route"], buckets=LATENCY_BUCKETS)
DAX_BREAKER_OPEN = Gauge(
    "mangaassist_dax_breaker_open",
    "1 in a process whose DAX circuit breaker is open or half-open (summed: processes sending "
    "DAX's traffic to DynamoDB).", multiprocess_mode="livesum")
DAX_BREAKER_TRANSITIONS = Counter(
    "mangaassist_dax_breaker_transitions_total", "DAX circuit breaker state changes, by new state.", ["state"])

REDIS_ERRORS = Counter(
    "mangaassist_redis_errors_total",
    "Redis calls that failed, by call site (operation) and outcome (unavailable: Redis unreachable or "
    "refusing; error: a command Redis rejected). Calls in all: the duration histogram's _count.",
    ["operation", "outcome"])
REDIS_REQUEST_SECONDS = Histogram(
    "mangaassist_redis_request_duration_seconds", "Redis calls and their latency by call site.", ["operation"],
    buckets=LATENCY_BUCKETS)
REDIS_DEGRADED = Counter(
    "mangaassist_redis_degraded_events_total",
    "Calls that went on without Redis (it was unreachable or refused), by call site.", ["operation"])

CONTEXT_LOADS = Counter(
    "mangaassist_context_loads_total",
    "Bot context loads by where they were served from (redis, dax, dynamodb).", ["source"])
TURN_APPENDS = Counter(
    "mangaassist_turn_appends_total",
    "Turn appends through the API by outcome: 201, replay (an idempotent retry answered from the "
    "stored turn), 409, 413, 429, 503, or 400 (invalid input).", ["outcome"])
# Per model (sessions_app.usage.turn_usage_record): ``model`` is a model of MODEL_PRICES or
# "other" — a bounded set chosen by the settings, never the bot's free text.
MODEL_TOKENS = Counter(
    "mangaassist_model_tokens_total",
    "Tokens of stored turns by model (MODEL_PRICES' models, others as 'other') and direction (in, out).",
    ["model", "direction"])
MODEL_LATENCY_SECONDS = Histogram(
    "mangaassist_model_latency_seconds",
    "Bot (assistant) turn latency as the bot reported it, by model (MODEL_PRICES' models, others as 'other').",
    ["model"], buckets=LATENCY_BUCKETS)
RATE_LIMIT_DENIALS = Counter(
    "mangaassist_rate_limit_denials_total", "Requests refused by a rate limit, by limit.", ["limit"])

SUMMARY_TASKS = Histogram(
    "mangaassist_summary_task_duration_seconds",
    "Summary task runs by outcome (written, skipped, retry, failed).", ["outcome"], buckets=TASK_BUCKETS)
TASK_ENQUEUE_FAILURES = Counter(
    "mangaassist_task_enqueue_failures_total",
    "Background tasks that could not be published to the broker, by task.", ["task"])
WEBHOOK_DELIVERIES = Counter(
    "mangaassist_webhook_deliveries_total",
    "Outbound webhook attempts by webhook (bot, alerts) and outcome (delivered, failed, gave_up).",
    ["webhook", "outcome"])

# Levels the alert sweep (Celery beat, services.alerts) measures once a minute, exported so that
# Prometheus can alert on them too; "mostrecent": the last value any process set.
SUMMARY_BACKLOG = Gauge(
    "mangaassist_summary_backlog_sessions",
    "Sessions whose turns have waited SUMMARY_IDLE_MINUTES or more for a summary (set by the alert sweep).",
    multiprocess_mode="mostrecent")
STREAM_LAG_P95 = Gauge(
    "mangaassist_stream_lag_p95_seconds",
    "The change feed's lag p95 over the last minute, as the stream consumers report it (set by the alert sweep).",
    multiprocess_mode="mostrecent")


def set_level(gauge: Gauge, value: float) -> None:
    if ENABLED:
        gauge.set(value)


# --- recording ----------------------------------------------------------------------------------------

# Children by (metric, label values), looked up without prometheus-client's lock: ``labels()``
# takes a lock and builds a key on every call, which on the bot's warm context path (a handful of
# recordings per request) was measurable (bench scenario 11). Label sets are bounded, so is this.
_children: dict[tuple, object] = {}


def child(metric, *labels: str):
    key = (id(metric), labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def observe_seconds(histogram: Histogram, seconds: float, *labels: str) -> None:
    if ENABLED:
        child(histogram, *labels).observe(seconds)


def count(counter: Counter, *labels: str, amount: float = 1.0) -> None:
    if ENABLED:
        child(counter, *labels).inc(amount)


@contextmanager
def timed(histogram: Histogram, *labels: str) -> Iterator[None]:
    """Observe the block's duration (also when it raises)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observe_seconds(histogram, time.perf_counter() - started, *labels)


def dax_breaker_state(state: str) -> None:
    """The breaker moved to ``state`` (closed, open, half-open)."""
    if ENABLED:
        DAX_BREAKER_OPEN.set(0 if state == "closed" else 1)
        child(DAX_BREAKER_TRANSITIONS, state).inc()


# --- reading --------------------------------------------------------------------------------------------

def aggregate_mode() -> str:
    """``multiprocess``: every process writing to PROMETHEUS_MULTIPROC_DIR is added up;
    ``process``: this process's own numbers only."""
    return "multiprocess" if MULTIPROC_DIR else "process"


def _registry() -> CollectorRegistry:
    if not MULTIPROC_DIR:
        return _PROCESS_REGISTRY
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
    return registry


def exposition() -> bytes:
    """The text exposition format of every process's metrics (``/metrics``)."""
    return generate_latest(_registry())


def collect() -> Iterable[Metric]:
    return _registry().collect()


def mark_process_dead(pid: int) -> None:
    """A process exited (gunicorn's ``child_exit``; Celery's ``worker_process_shutdown``; our own
    exit): its live gauges stop counting. Its counters stay in the totals, as they should."""
    if MULTIPROC_DIR:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path=MULTIPROC_DIR)


if MULTIPROC_DIR:
    # A management command or a consumer that ends cleanly removes its own live gauges (a
    # breaker left "open" by a process that no longer exists would be a false alarm).
    atexit.register(lambda: mark_process_dead(os.getpid()))


def samples(prefix: str = "mangaassist_") -> Iterator[tuple[str, dict[str, str], float]]:
    """Every sample (name, labels, value) of the project's metrics, added up over processes."""
    for family in collect():
        # A counter family is named without its samples' "_total".
        if not (family.name.startswith(prefix) or prefix.startswith(family.name)):
            continue
        for sample in family.samples:
            if sample.name.startswith(prefix):
                yield sample.name, sample.labels, sample.value


def sample_value(name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    return sum(value for sample_name, sample_labels, value in samples(name)
               if sample_name == name and all(sample_labels.get(k) == v for k, v in labels.items()))
