"""The console overview: live numbers, chart series and read latency per route.

Each number comes from its own source (see the template): presence and rate/cache counters from
Redis, counts from index Queries (memoised per process), DAX cache ratios from the DAX node's
stats endpoint over HTTP, latencies from this process's own histograms.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from django.conf import settings

from .. import dynamo, keys
from ..clock import utcnow
from ..models import SessionMeta
from ..realtime import (
    context_cache_hit_ratio,
    context_cache_stats,
    presence_online_count,
    rate_limit_stats,
)
from .provenance import ROUTE_LABELS, ROUTE_REDIS, redis_latency, redis_read
from .summaries import BACKLOG_COUNT_CAP, summary_backlog_count

CONTEXT_CACHE_ALERT_BELOW = 0.80


@dataclass(frozen=True)
class DaxRatios:
    item_hit_ratio: float | None
    query_hit_ratio: float | None


@dataclass(frozen=True)
class LatencyRow:
    path: str
    calls: int
    p50_ms: float | None
    p95_ms: float | None


@dataclass(frozen=True)
class Overview:
    online_now: int | None
    turns_per_minute: int | None  # the last complete minute
    sessions_today: int
    rate_limited_10m: int | None
    summary_backlog: int  # sessions whose turns have waited SUMMARY_IDLE_MINUTES or more for a summary
    summary_backlog_capped: bool  # the count stopped at BACKLOG_COUNT_CAP
    summary_backlog_minutes: int
    dax: DaxRatios | None
    context_hit_ratio: float | None
    context_alert: bool
    latency: list[LatencyRow]
    series: dict = field(default_factory=dict)  # chart data (json_script)


# --- memoised counts ------------------------------------------------------------------------------

_count_cache: dict[tuple, tuple[float, int]] = {}
_count_lock = threading.Lock()
# The overview polls every few seconds in every open browser; each count reads whole index
# partitions, so a process answers from its last count for this long.
COUNT_CACHE_SECONDS = 30.0


def _memoised_count(what: tuple, count: Callable[[], int]) -> int:
    key = (settings.DYNAMODB_TABLE, settings.DYNAMODB_ENDPOINT, *what)
    now = time.monotonic()
    with _count_lock:
        hit = _count_cache.get(key)
        if hit and now - hit[0] < COUNT_CACHE_SECONDS:
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


def summary_backlog() -> tuple[int, bool]:
    """Sessions whose turns have waited ``SUMMARY_IDLE_MINUTES`` or more for a summary (the
    sweep's own threshold), table-wide, and whether the count stopped at its cap (memoised)."""
    minute = utcnow().replace(second=0, microsecond=0)
    waiting_since = minute - timedelta(minutes=settings.SUMMARY_IDLE_MINUTES)
    total = _memoised_count(("backlog", minute), lambda: summary_backlog_count(waiting_since=waiting_since))
    return total, total >= BACKLOG_COUNT_CAP


# --- the DAX node's stats endpoint ----------------------------------------------------------------

def dax_cache_ratios(*, url: str | None = None, timeout: float = 0.5) -> DaxRatios | None:
    """Item and query cache hit ratios from the DAX node's stats endpoint; None when unset or
    unreachable (the overview shows "n/a", never a made-up zero)."""
    url = url if url is not None else settings.DAX_STATS_URL
    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - URL from settings
            stats = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None

    def ratio(hits: str, misses: str) -> float | None:
        h, m = stats.get(hits), stats.get(misses)
        if not isinstance(h, (int, float)) or not isinstance(m, (int, float)) or h + m == 0:
            return None
        return h / (h + m)

    return DaxRatios(item_hit_ratio=ratio("ItemCacheHits", "ItemCacheMisses"),
                     query_hit_ratio=ratio("QueryCacheHits", "QueryCacheMisses"))


# --- the overview ---------------------------------------------------------------------------------

def _latency_rows() -> list[LatencyRow]:
    """One row per route: the console's Redis reads, then each DynamoDB route (dynamo.ROUTES)."""
    stats = dynamo.path_stats()
    rows = [LatencyRow(ROUTE_LABELS[ROUTE_REDIS], *redis_latency())]
    for route in dynamo.ROUTES:
        s = stats.get(route, {})
        rows.append(LatencyRow(ROUTE_LABELS[route], s.get("calls", 0), s.get("p50_ms"), s.get("p95_ms")))
    return rows


def overview_metrics() -> Overview:
    """The overview's numbers and chart series, each from its own source (see the template)."""
    with redis_read():
        online = presence_online_count()
        rate = rate_limit_stats(minutes=15)
        cache = context_cache_stats(minutes=15)
        hit_ratio = context_cache_hit_ratio(minutes=15)
    backlog, backlog_capped = summary_backlog()
    series: dict[str, Any] = {"labels": [], "turns": [], "denied": [], "cache_ratio": []}
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
        dax=dax_cache_ratios(),
        context_hit_ratio=hit_ratio,
        context_alert=hit_ratio is not None and hit_ratio < CONTEXT_CACHE_ALERT_BELOW,
        latency=_latency_rows(),
        series=series,
    )
