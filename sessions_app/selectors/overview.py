"""The console overview: live numbers, chart series, read latency per route, and the change feed.

Each number comes from its own source (see the template): presence and rate/cache counters from
Redis, counts from index Queries (memoised per process), DAX cache ratios from the DAX node's
stats endpoint over HTTP, latencies, error rates, degraded events and enqueue failures from the
Prometheus metrics of every process (``operations_panel``; the numbers /metrics exposes), the
alerts from the alert sweep's state (``selectors.alerts``). The change feed's panel
(lag, throughput, leases, the last error), the fleet-wide counts and the activity feed come from
``selectors.stream``: what every stream consumer wrote to Redis, and the lease table. The search
index's panel (engine, sessions indexed, age of the newest indexed change) from the index itself.

The overview leads with support work: hand-offs waiting, open sessions (status active or handed
off: ``open_sessions_count``) and online ones (presence: a heartbeat now) — two different ideas,
named apart —, turns per minute, rate-limited requests, the bot's reply latency p95
(``bot_latency``) and the summary backlog. A red band is only painted where the alert rules would
judge: the same minimum samples (``selectors.alerts.min_cache_lookups`` / ``min_http_requests``);
below them the tile says "not enough traffic".
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from django.conf import settings
from pynamodb.exceptions import PynamoDBException

from .. import dynamo, keys
from ..clock import utcnow
from ..exceptions import InvalidInput, StoreUnavailable
from ..ids import validate_id
from ..models import SessionMeta, SessionStatus
from ..realtime import (
    context_cache_stats,
    presence_online,
    presence_online_count,
    rate_limit_stats,
)
from ..streams.records import ORIGINS
from .handoff import handoff_queue_count
from .alerts import alerts_panel, min_cache_lookups, min_http_requests, sample_before
from .dax_nodes import DaxClusterView, DaxNodeRow, dax_cluster  # noqa: F401 - the overview's names for them
from .metrics import current_reading, quantile_seconds, ratio, window
from .provenance import ROUTE_LABELS, ROUTE_REDIS, redis_read
from .search import search_index_status
from .sessions import session_get_many, turns_page
from .stream import FleetSummary, StreamStatus, activity_feed, fleet_summary, stream_status
from .summaries import BACKLOG_COUNT_CAP, summary_backlog_count

# The context cache tile's window: the alert rule's (services.alerts: context_hit_ratio_low).
CONTEXT_CACHE_MINUTES = 15

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DaxRatios:
    item_hit_ratio: float | None
    query_hit_ratio: float | None
    item_lookups: int = 0  # the hits and misses behind each ratio
    query_lookups: int = 0
    min_lookups: int = 0  # selectors.alerts.min_cache_lookups(): fewer is "not enough traffic"

    @property
    def item_judged(self) -> bool:
        return self.item_lookups >= self.min_lookups

    @property
    def query_judged(self) -> bool:
        return self.query_lookups >= self.min_lookups


@dataclass(frozen=True)
class RatioBand:
    """A hit ratio the overview may paint red: only with at least ``min_sample`` lookups in its
    window (the alert rule's own minimum), below that it says "not enough traffic"."""

    value: float | None
    sample: int | None  # lookups in the window; None: unknown (Redis down)
    min_sample: int
    threshold: float  # below this is the alert

    @property
    def judged(self) -> bool:
        return self.sample is not None and self.sample >= self.min_sample

    @property
    def alert(self) -> bool:
        return self.judged and self.value is not None and self.value < self.threshold

    @property
    def thin(self) -> bool:
        """Known, but fewer lookups than the rules need to judge."""
        return self.sample is not None and not self.judged


@dataclass(frozen=True)
class BotLatency:
    """The bot's reply latency (``latency_ms`` the runtime sends with each assistant turn), p95
    over the newest replies of the most recently online sessions."""

    p95_ms: float | None  # None: no reply with a latency in the window
    replies: int  # replies behind the percentile
    sessions: int  # sessions read
    minutes: int


@dataclass(frozen=True)
class LatencyRow:
    path: str
    calls: int
    p50_ms: float | None
    p95_ms: float | None


# --- the change feed ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamError:
    """The consumers' latest recorded error."""

    at_utc: str | None  # "2025-01-31 12:00:03 UTC"; None: the record carries no usable time
    consumer: str
    shard: str | None
    message: str


@dataclass(frozen=True)
class StreamPanel:
    """The change feed as the overview shows it. ``state``: ``no_stream`` (the table has none),
    ``unreadable`` (the table, stream or lease table could not be read: ``error`` says why) or
    ``ok``. Progress numbers are None when Redis is down (``progress_known`` False): unknown,
    never zero."""

    state: str
    error: str | None
    window_seconds: int
    progress_known: bool
    records: int | None
    records_per_second: float | None
    lag_p50_s: float | None  # None with progress known: idle, no record in the window
    lag_p95_s: float | None
    lag_max_s: float | None
    origins: list[tuple[str, int]]  # app, ttl, outside, delete (then any other origin seen)
    last_error: StreamError | None
    shards: int
    shards_open: int
    leases: int
    leases_held: int
    consumers: list[str]  # owners holding a lease now
    lag_alert: bool
    lag_alert_seconds: str  # the threshold, as shown ("30", "2.5")

    @property
    def idle(self) -> bool:
        return self.progress_known and not self.records


@dataclass(frozen=True)
class FleetPanel:
    """Fleet-wide counts of the last ``minutes`` minutes, counted from the change feed (every
    writer's changes). ``known`` False: Redis down, every count unknown."""

    minutes: int
    known: bool
    turns: int | None = None
    summaries: int | None = None
    expired: int | None = None
    started: list[tuple[str, int]] = field(default_factory=list)  # per channel
    closed: list[tuple[str, int]] = field(default_factory=list)
    started_total: int | None = None
    closed_total: int | None = None
    caveat: str | None = None  # why the counts may be behind (no stream, no consumer)
    turns_last_minute: int | None = None  # turns written in the last complete minute


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def _utc(epoch: object) -> str | None:
    try:
        return datetime.fromtimestamp(float(epoch), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _stream_error(raw: dict | None) -> StreamError | None:
    if not isinstance(raw, dict):
        return None
    shard = raw.get("shard")
    return StreamError(at_utc=_utc(raw.get("at")), consumer=str(raw.get("consumer") or "unknown"),
                       shard=str(shard) if shard else None, message=str(raw.get("message") or ""))


def _threshold_text(value: float) -> str:
    return f"{value:g}"


def stream_panel(status: StreamStatus | None = None) -> StreamPanel:
    """The overview's change-feed panel (``status``: an already read ``stream_status()``)."""
    # No DescribeStream on every poll of every open overview (AWS allows 10 per second per
    # account, and the consumers need them): the lease table has one lease per known shard.
    status = status if status is not None else stream_status(shards=False)
    progress = status.progress
    if status.error:
        state = "unreadable"
    elif status.stream_arn is None:
        state = "no_stream"
    else:
        state = "ok"
    origins: list[tuple[str, int]] = []
    if progress is not None:
        origins = [(o, progress.origins.get(o, 0)) for o in ORIGINS]
        origins += sorted((o, n) for o, n in progress.origins.items() if o not in ORIGINS)
    return StreamPanel(
        state=state,
        error=status.error,
        window_seconds=progress.seconds if progress is not None else 60,
        progress_known=progress is not None,
        records=progress.records if progress is not None else None,
        records_per_second=progress.records_per_second if progress is not None else None,
        lag_p50_s=_seconds(progress.lag_p50_ms) if progress is not None else None,
        lag_p95_s=_seconds(progress.lag_p95_ms) if progress is not None else None,
        lag_max_s=_seconds(progress.lag_max_ms) if progress is not None else None,
        origins=origins,
        last_error=_stream_error(progress.last_error) if progress is not None else None,
        shards=len(status.leases),
        shards_open=sum(1 for lease in status.leases if not lease.finished),
        leases=len(status.leases),
        leases_held=len(status.leases_held),
        consumers=status.consumers,
        lag_alert=status.lag_alert,
        lag_alert_seconds=_threshold_text(settings.STREAM_LAG_ALERT_SECONDS),
    )


def _per_channel(summary: FleetSummary, what: str) -> list[tuple[str, int]]:
    rows = list(summary.by_channel(what).items())
    other = summary.total_prefixed(f"{what}:") - sum(n for _, n in rows)
    if other:  # a session without a known channel ("unknown", or one added since)
        rows.append(("other", other))
    return rows


def fleet_panel(*, stream: StreamPanel, minutes: int = 15) -> FleetPanel:
    """The fleet-wide counts of the last ``minutes`` minutes from the change feed."""
    with redis_read():
        summary = fleet_summary(minutes=minutes)
    if stream.state == "no_stream":
        caveat = "the table has no stream, so nothing is counting these"
    elif stream.state == "ok" and not stream.consumers:
        caveat = "no consumer holds a lease now: the counts stop at the last change processed"
    else:
        caveat = None
    if summary is None:
        return FleetPanel(minutes=minutes, known=False, caveat=caveat)
    started, closed = _per_channel(summary, "started"), _per_channel(summary, "closed")
    return FleetPanel(
        minutes=minutes, known=True,
        turns=summary.total("turns"), summaries=summary.total("summaries"), expired=summary.total("expired"),
        started=started, closed=closed,
        started_total=sum(n for _, n in started), closed_total=sum(n for _, n in closed),
        caveat=caveat,
        # per_minute is newest first and starts with the minute under way.
        turns_last_minute=summary.per_minute[1].counts.get("turns", 0) if len(summary.per_minute) > 1 else None,
    )


# --- the search index -----------------------------------------------------------------------------

@dataclass(frozen=True)
class SearchIndexPanel:
    """The transcript search index as the overview (and the search page) show it. ``state``:
    ``ok`` or ``unreadable`` (the index could not be read: ``error`` says why, every number is
    None). ``age_seconds``: how long ago the newest change the index reflects happened — the
    index may be that far behind, or nothing changed since (it says which it cannot)."""

    state: str
    engine: str
    sessions: int | None
    newest_change_at: datetime | None
    age_seconds: float | None
    error: str | None = None


def search_index_panel() -> SearchIndexPanel:
    """The index's state; a failure to read it (a locked or missing file, the database down — any
    engine's error) is the panel's ``unreadable`` state, never the page's 500."""
    try:
        status = search_index_status()
    except Exception as exc:  # noqa: BLE001 - each engine raises its own driver's errors
        log.warning("the search index could not be read: %s", exc, exc_info=True)
        return SearchIndexPanel(state="unreadable", engine=str(settings.SEARCH_ENGINE), sessions=None,
                                newest_change_at=None, age_seconds=None, error=f"{type(exc).__name__}: {exc}"[:300])
    return SearchIndexPanel(state="ok", engine=status.engine, sessions=status.sessions,
                            newest_change_at=status.newest_change_at, age_seconds=status.lag_seconds)


@dataclass(frozen=True)
class ActivityRow:
    id: str
    at_utc: str | None  # "12:00:03.123 UTC"
    at_iso: str  # the event's own timestamp, for <time datetime>
    kind: str
    kind_class: str  # a CSS class from a fixed list (never the event's own text)
    session_id: str
    session_linkable: bool  # a valid id: links to its detail page
    seq: str | None
    role: str | None
    channel: str | None


ACTIVITY_KINDS = ("started", "turn", "closed", "handed_off", "summarised", "deleted", "expired")


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def _activity_row(event: dict) -> ActivityRow:
    kind = str(event.get("kind") or "")
    session_id = str(event.get("session_id") or "")
    try:
        validate_id(session_id, field="session_id")
        linkable = True
    except InvalidInput:
        linkable = False
    at_utc = None
    try:
        at = datetime.fromtimestamp(int(event["at_ms"]) / 1000, tz=timezone.utc)
        at_utc = at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d} UTC"
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        pass
    return ActivityRow(
        id=str(event.get("id") or ""), at_utc=at_utc, at_iso=str(event.get("at") or ""),
        kind=kind, kind_class=f"kind-{kind}" if kind in ACTIVITY_KINDS else "kind-other",
        session_id=session_id, session_linkable=linkable,
        seq=_text(event.get("seq")), role=_text(event.get("role")), channel=_text(event.get("channel")),
    )


@dataclass(frozen=True)
class Activity:
    known: bool  # False: Redis down
    rows: list[ActivityRow]
    limit: int


def overview_activity(*, limit: int = 30) -> Activity:
    """The newest change events for the overview's activity feed, newest first."""
    with redis_read():
        events = activity_feed(limit=limit)
    if events is None:
        return Activity(known=False, rows=[], limit=limit)
    return Activity(known=True, rows=[_activity_row(e) for e in events if isinstance(e, dict)], limit=limit)


@dataclass(frozen=True)
class Overview:
    online_now: int | None  # sessions with a live presence heartbeat ("Online now"), not "open"
    turns_per_minute: int | None  # the last complete minute
    sessions_today: int
    rate_limited_10m: int | None
    summary_backlog: int  # sessions whose turns have waited SUMMARY_IDLE_MINUTES or more for a summary
    summary_backlog_capped: bool  # the count stopped at BACKLOG_COUNT_CAP
    summary_backlog_minutes: int
    dax: DaxRatios | None
    dax_cluster: DaxClusterView | None
    context_hit_ratio: float | None
    context_alert: bool
    operations: OperationsPanel
    alerts: Any
    stream: StreamPanel
    fleet: FleetPanel
    series: dict = field(default_factory=dict)  # chart data (json_script)
    handoff_waiting: int | None = None  # hand-offs waiting for a human (None: the store did not answer)
    search: SearchIndexPanel | None = None  # the transcript search index
    open_sessions: int | None = None  # status active or handed off (by_status index count); None: unknown
    bot_latency: BotLatency | None = None  # None: Redis down (no online list) or DynamoDB did not answer
    context_cache: RatioBand | None = None  # the context cache tile's ratio, sample and band


# --- memoised counts ------------------------------------------------------------------------------

_count_cache: dict[tuple, tuple[float, int]] = {}
_count_lock = threading.Lock()
# The overview polls every few seconds in every open browser; each count reads whole index
# partitions, so a process answers from its last count for this long.
COUNT_CACHE_SECONDS = 30.0


# The "needs a human" count is in every console page's title: fresher, still one COUNT Query per
# queue shard per process per this many seconds at most, however many pages are served.
HANDOFF_COUNT_CACHE_SECONDS = 5.0


def _memoised_count(what: tuple, count: Callable[[], int], *, max_age: float = COUNT_CACHE_SECONDS) -> int:
    key = (settings.DYNAMODB_TABLE, settings.DYNAMODB_ENDPOINT, *what)
    now = time.monotonic()
    with _count_lock:
        hit = _count_cache.get(key)
        if hit and now - hit[0] < max_age:
            return hit[1]
    total = count()
    with _count_lock:
        _count_cache[key] = (now, total)
    return total


def sessions_today_count(*, day: date | None = None) -> int:
    """Sessions started on ``day`` (UTC): a Select=COUNT Query per by_day shard (memoised)."""
    day = day or utcnow().date()

    def count() -> int:
        with dynamo.dax_bypassed():  # DAX's query cache would keep repeating an old count
            return sum(SessionMeta.by_day.count(keys.day_pk(day, shard)) for shard in range(settings.DYNAMODB_DAY_SHARDS))

    return _memoised_count(("today", day), count)


def handoff_waiting_count() -> int | None:
    """Hand-offs waiting for a human (``handoff_queue_count``: a Select=COUNT Query per queue
    shard, past DAX's query cache), memoised per process for ``HANDOFF_COUNT_CACHE_SECONDS``.
    None when DynamoDB could not answer (unreachable, throttled): the page title leaves the count
    out and the overview says "unknown" rather than failing for it."""

    def count() -> int:
        with dynamo.dax_bypassed():
            return handoff_queue_count()

    try:
        return _memoised_count(("handoff_waiting",), count, max_age=HANDOFF_COUNT_CACHE_SECONDS)
    except StoreUnavailable:
        return None
    except PynamoDBException as exc:
        if dynamo.store_unavailable("Query", exc) is not None:  # throttled or DynamoDB-side: unknown
            return None
        raise


# Open sessions: like the "needs a human" count, fresh to a few seconds, one COUNT Query per
# status shard per process per this many seconds at most.
OPEN_COUNT_CACHE_SECONDS = 5.0


def _store_count(what: tuple, count: Callable[[], int], *, max_age: float) -> int | None:
    """A memoised COUNT past DAX's query cache; None when DynamoDB could not answer."""

    def bypassed() -> int:
        with dynamo.dax_bypassed():
            return count()

    try:
        return _memoised_count(what, bypassed, max_age=max_age)
    except StoreUnavailable:
        return None
    except PynamoDBException as exc:
        if dynamo.store_unavailable("Query", exc) is not None:
            return None
        raise


def open_sessions_count() -> int | None:
    """Sessions not closed — status active or handed off: a Select=COUNT Query per by_status
    shard of each (the index is sparse: a closed session leaves it), memoised per process for
    ``OPEN_COUNT_CACHE_SECONDS``. None when DynamoDB could not answer."""

    def count() -> int:
        return sum(SessionMeta.by_status.count(keys.status_pk(status, shard))
                   for status in SessionStatus.INDEXED for shard in range(settings.DYNAMODB_STATUS_SHARDS))

    return _store_count(("open",), count, max_age=OPEN_COUNT_CACHE_SECONDS)


# The bot latency tile: the newest turns of the most recently online sessions (presence, Redis),
# read by exact keys (DAX's item cache serves them), replies of the last BOT_LATENCY_MINUTES.
BOT_LATENCY_SESSIONS = 20
BOT_LATENCY_TURNS = 10
BOT_LATENCY_MINUTES = 15
BOT_LATENCY_CACHE_SECONDS = 30.0
_latency_cache: dict[tuple, tuple[float, BotLatency | None]] = {}


def _p95(values: list[float]) -> float | None:
    """The nearest-rank 95th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, -(-95 * len(ordered) // 100) - 1)]


def bot_latency() -> BotLatency | None:
    """The bot's reply latency p95 (memoised per process for ``BOT_LATENCY_CACHE_SECONDS``):
    ``latency_ms`` of the assistant turns of the last ``BOT_LATENCY_MINUTES`` among the newest
    ``BOT_LATENCY_TURNS`` turns of the ``BOT_LATENCY_SESSIONS`` most recently online sessions — a
    sample of the live conversations, two reads per session at most. None: Redis is down (no
    online list) or DynamoDB did not answer."""
    key = (settings.DYNAMODB_TABLE, settings.DYNAMODB_ENDPOINT)
    now = time.monotonic()
    with _count_lock:
        hit = _latency_cache.get(key)
        if hit and now - hit[0] < BOT_LATENCY_CACHE_SECONDS:
            return hit[1]
    with redis_read():
        online = presence_online(limit=BOT_LATENCY_SESSIONS)
    if online is None:
        return None
    since = utcnow() - timedelta(minutes=BOT_LATENCY_MINUTES)
    latencies: list[float] = []
    try:
        metas = session_get_many(session_ids=online)
        for meta in metas:
            if not int(meta.turn_count or 0):
                continue
            page = turns_page(session_id=meta.session_id, limit=BOT_LATENCY_TURNS, meta=meta)
            latencies += [float(t.latency_ms) for t in page.turns
                          if t.role == "assistant" and t.latency_ms is not None and t.created_at >= since]
    except StoreUnavailable:
        return None
    except PynamoDBException as exc:
        if dynamo.store_unavailable("BatchGetItem", exc) is not None:
            return None
        raise
    found = BotLatency(p95_ms=_p95(latencies), replies=len(latencies), sessions=len(metas),
                       minutes=BOT_LATENCY_MINUTES)
    with _count_lock:
        _latency_cache[key] = (time.monotonic(), found)
    return found


def summary_backlog() -> tuple[int, bool]:
    """Sessions whose turns have waited ``SUMMARY_IDLE_MINUTES`` or more for a summary (the
    sweep's own threshold), table-wide, and whether the count stopped at its cap (memoised)."""
    minute = utcnow().replace(second=0, microsecond=0)
    waiting_since = minute - timedelta(minutes=settings.SUMMARY_IDLE_MINUTES)
    total = _memoised_count(("backlog", minute), lambda: summary_backlog_count(waiting_since=waiting_since))
    return total, total >= BACKLOG_COUNT_CAP


# --- the DAX cluster (selectors.dax_nodes) --------------------------------------------------------

def dax_cache_ratios(cluster: DaxClusterView | None) -> DaxRatios | None:
    """Item and query cache hit ratios over every node that answered."""
    if cluster is None:
        return None

    def lookups(hits: str, misses: str) -> tuple[int, int]:
        return (sum(getattr(n, hits) or 0 for n in cluster.nodes), sum(getattr(n, misses) or 0 for n in cluster.nodes))

    (ih, im), (qh, qm) = lookups("item_hits", "item_misses"), lookups("query_hits", "query_misses")
    return DaxRatios(item_hit_ratio=ih / (ih + im) if ih + im else None,
                     query_hit_ratio=qh / (qh + qm) if qh + qm else None,
                     item_lookups=ih + im, query_lookups=qh + qm, min_lookups=min_cache_lookups())


# --- the overview ---------------------------------------------------------------------------------

# The overview's operations panel: the Prometheus metrics every process records, over the last
# OPERATIONS_WINDOW_SECONDS (the alert sweep stores a reading every minute; the window is now
# minus the newest stored reading that old).
OPERATIONS_WINDOW_SECONDS = 15 * 60


@dataclass(frozen=True)
class OperationsPanel:
    window_seconds: float | None  # None: since the processes started (no stored reading yet)
    mode: str  # observability.metrics.aggregate_mode(): "multiprocess" or "process"
    latency: list[LatencyRow]
    http_requests: int
    http_5xx: int
    http_error_rate: float | None
    dynamodb_errors: list[tuple[str, int]]  # (route label, calls that failed)
    redis_errors: int
    degraded: list[tuple[str, int]]  # (call site, events), most first
    enqueue_failures: list[tuple[str, int]]  # (task, failures)
    appends: list[tuple[str, int]]  # (outcome, count)
    context_loads: list[tuple[str, int]]  # (source, count)
    breaker_open_processes: int
    http_min_requests: int = 0  # selectors.alerts.min_http_requests(): fewer is "not enough traffic"
    http_error_threshold: float = 0.05  # ALERT_ERROR_RATE_ABOVE

    @property
    def http_error_judged(self) -> bool:
        return self.http_requests >= self.http_min_requests

    @property
    def http_error_alert(self) -> bool:
        """Red only where the alert rule would judge: enough requests, above its threshold."""
        return (self.http_error_judged and self.http_error_rate is not None
                and self.http_error_rate > self.http_error_threshold)

    @property
    def window_minutes(self) -> int | None:
        return None if self.window_seconds is None else round(self.window_seconds / 60)

    @property
    def degraded_total(self) -> int:
        return sum(n for _, n in self.degraded)

    @property
    def enqueue_failures_total(self) -> int:
        return sum(n for _, n in self.enqueue_failures)


def _ms_or_none(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _nonzero(values: dict[str, float]) -> list[tuple[str, int]]:
    return sorted(((k, int(v)) for k, v in values.items() if v >= 1), key=lambda kv: (-kv[1], kv[0]))


def operations_panel(*, window_seconds: float = OPERATIONS_WINDOW_SECONDS) -> OperationsPanel:
    """Latency percentiles per route, error rates, degraded events and enqueue failures, from the
    same metrics ``/metrics`` exposes — every process's (multiprocess mode), over the window."""
    now = current_reading()
    older = sample_before(window_seconds)
    w = window(now, older)
    rows = [LatencyRow(ROUTE_LABELS[ROUTE_REDIS], int(w.value("redis:calls")),
                       _ms_or_none(quantile_seconds(w.buckets.get("redis"), 0.5)),
                       _ms_or_none(quantile_seconds(w.buckets.get("redis"), 0.95)))]
    for route in dynamo.ROUTES:
        row = w.buckets.get(f"dynamodb:{route}")
        rows.append(LatencyRow(ROUTE_LABELS[route], int(w.value(f"dynamodb:calls:{route}")),
                               _ms_or_none(quantile_seconds(row, 0.5)), _ms_or_none(quantile_seconds(row, 0.95))))
    requests, errors = w.value("http:requests"), w.value("http:status:5xx")
    return OperationsPanel(
        window_seconds=(now.at - older.at) if older is not None else None,
        mode=now.mode,
        latency=rows,
        http_requests=int(requests), http_5xx=int(errors), http_error_rate=ratio(errors, requests),
        dynamodb_errors=[(ROUTE_LABELS[r], int(w.value(f"dynamodb:errors:{r}"))) for r in dynamo.ROUTES
                         if w.value(f"dynamodb:errors:{r}") >= 1],
        redis_errors=int(w.value("redis:errors")),
        degraded=_nonzero(w.prefixed("degraded:")),
        enqueue_failures=_nonzero(w.prefixed("enqueue_failures:")),
        appends=_nonzero(w.prefixed("appends:")),
        context_loads=_nonzero(w.prefixed("context:")),
        breaker_open_processes=int(w.value("dax:breaker_open")),
        http_min_requests=min_http_requests(),
        http_error_threshold=float(settings.ALERT_ERROR_RATE_ABOVE),
    )


def _context_band(cache) -> RatioBand:
    """The context cache tile over the alert rule's window, with its minimum sample."""
    if cache is None:
        return RatioBand(value=None, sample=None, min_sample=min_cache_lookups(),
                         threshold=float(settings.ALERT_HIT_RATIO_BELOW))
    hits = sum(m.hits for m in cache)
    total = hits + sum(m.misses for m in cache)
    return RatioBand(value=hits / total if total else None, sample=total, min_sample=min_cache_lookups(),
                     threshold=float(settings.ALERT_HIT_RATIO_BELOW))


def overview_metrics() -> Overview:
    """The overview's numbers and chart series, each from its own source (see the template)."""
    with redis_read():
        online = presence_online_count()
        rate = rate_limit_stats(minutes=15)
        cache = context_cache_stats(minutes=CONTEXT_CACHE_MINUTES)
    backlog, backlog_capped = summary_backlog()
    cluster = dax_cluster()
    stream = stream_panel()
    fleet = fleet_panel(stream=stream)
    context = _context_band(cache)
    series: dict[str, Any] = {"labels": [], "turns": [], "denied": [], "cache_ratio": [],
                              "cache_alert_below": round(100 * context.threshold, 1)}
    if rate is not None:
        for minute in reversed(rate):
            series["labels"].append(datetime.fromtimestamp(minute.minute_start, tz=timezone.utc).strftime("%H:%M"))
            series["turns"].append(minute.allowed)
            series["denied"].append(minute.denied)
    if cache is not None:
        series["cache_ratio"] = [
            round(100 * m.hits / (m.hits + m.misses), 1) if m.hits + m.misses else None for m in reversed(cache)
        ]
    return Overview(
        online_now=online,
        turns_per_minute=rate[1].allowed if rate and len(rate) > 1 else None,
        sessions_today=sessions_today_count(),
        rate_limited_10m=sum(m.denied for m in rate[:10]) if rate is not None else None,
        summary_backlog=backlog,
        summary_backlog_capped=backlog_capped,
        summary_backlog_minutes=settings.SUMMARY_IDLE_MINUTES,
        dax=dax_cache_ratios(cluster),
        dax_cluster=cluster,
        context_hit_ratio=context.value,
        context_alert=context.alert,
        operations=operations_panel(),
        alerts=alerts_panel(),
        stream=stream,
        fleet=fleet,
        series=series,
        handoff_waiting=handoff_waiting_count(),
        search=search_index_panel(),
        open_sessions=open_sessions_count(),
        bot_latency=bot_latency(),
        context_cache=context,
    )


# --- usage by model ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelUsageRow:
    model: str  # a MODEL_PRICES model, or "other" (every model without a price)
    tokens_in: int
    tokens_out: int
    bot_turns: int  # bot turns that reported a latency
    latency_p95_ms: float | None
    cost: Any  # Decimal; None: no price ("other")

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True)
class ModelUsagePanel:
    """Tokens, bot latency p95 and cost by model over the window, from the per-model Prometheus
    metrics (``mangaassist_model_tokens_total``, ``mangaassist_model_latency_seconds``) of every
    process — the same readings and window as the operations panel."""

    window_seconds: float | None  # None: since the processes started (no stored reading yet)
    mode: str
    rows: list[ModelUsageRow]  # most tokens first
    max_tokens: int  # the largest row's tokens (the bars' scale)
    max_p95_ms: float
    total_cost: Any  # Decimal of the priced rows; None: no priced model used tokens
    unpriced_tokens: int  # tokens of models without a price ("other")

    @property
    def window_minutes(self) -> int | None:
        return None if self.window_seconds is None else round(self.window_seconds / 60)


def model_usage_panel(*, window_seconds: float = OPERATIONS_WINDOW_SECONDS) -> ModelUsagePanel:
    """The overview's by-model readings over the last ``window_seconds`` (see ``operations_panel``)."""
    from ..usage import OTHER_LABEL, price_for

    now = current_reading()
    older = sample_before(window_seconds)
    w = window(now, older)
    tokens_in, tokens_out = w.prefixed("model_tokens:in:"), w.prefixed("model_tokens:out:")
    latency = {k[len("model_latency:"):]: row for k, row in w.buckets.items() if k.startswith("model_latency:")}
    rows = []
    total_cost, unpriced = None, 0
    for model in set(tokens_in) | set(tokens_out) | set(latency):
        t_in, t_out = int(tokens_in.get(model, 0)), int(tokens_out.get(model, 0))
        row = latency.get(model)
        turns = int(row[-1]) if row else 0
        if not (t_in or t_out or turns):
            continue  # nothing in this window
        price = None if model == OTHER_LABEL else price_for(model)
        cost = price.cost(t_in, t_out) if price is not None else None
        if cost is not None:
            total_cost = cost if total_cost is None else total_cost + cost
        else:
            unpriced += t_in + t_out
        rows.append(ModelUsageRow(model=model, tokens_in=t_in, tokens_out=t_out, bot_turns=turns,
                                  latency_p95_ms=_ms_or_none(quantile_seconds(row, 0.95)), cost=cost))
    rows.sort(key=lambda r: (-r.tokens, r.model))
    return ModelUsagePanel(
        window_seconds=(now.at - older.at) if older is not None else None, mode=now.mode, rows=rows,
        max_tokens=max((r.tokens for r in rows), default=0),
        max_p95_ms=max((r.latency_p95_ms or 0.0 for r in rows), default=0.0),
        total_cost=total_cost, unpriced_tokens=unpriced,
    )
