"""Reads for the staff console and the admin's chat-session pages.

Everything here is a Query, GetItem or BatchGetItem (never a Scan) or a call into
``sessions_app.realtime``. Each panel of the session page is returned with its *provenance*:
where it was read from and how long that took, so staff can tell a cached answer from a fresh one.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from django.conf import settings

from .. import dynamo, keys
from ..exceptions import InvalidInput, RedisUnavailable
from ..models import SessionMeta, Summary, Turn
from ..realtime import (
    Presence,
    RateDecision,
    connections_for_session,
    context_cache_hit_ratio,
    context_cache_stats,
    presence_get,
    presence_get_many,
    presence_online,
    presence_online_count,
    rate_limit_peek,
    rate_limit_stats,
)
from ..clock import utcnow
from .listing import MAX_DAYS, session_list
from .presenters import session_dict, summary_dict, turn_dict
from .sessions import TurnPage, session_get, session_get_many, summary_latest, turns_page
from .summaries import BACKLOG_COUNT_CAP, summary_backlog_count

SUMMARY_STATES = ("none", "pending", "fresh", "stale", "failed")
# Raw ``SessionMeta.summary_state`` values written by the summary service, grouped for staff.
_PENDING_RAW = frozenset({"pending", "queued", "running", "started", "retrying", "retry"})
_FAILED_RAW = frozenset({"failed", "error", "failure"})
ONLINE_MAX = 200
CONTEXT_CACHE_ALERT_BELOW = 0.80

SOURCE_REDIS = "Redis"
SOURCE_DAX = "DAX"
SOURCE_DYNAMODB = "DynamoDB"
SOURCE_DYNAMODB_CONSISTENT = "DynamoDB (ConsistentRead)"


# --- provenance -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Provenance:
    source: str
    elapsed_ms: float


def _route_label(*, consistent: bool) -> str:
    """Where a read with this consistency goes, mirroring ``dynamo.RoutedConnection.route_for``:
    consistent reads and reads while the breaker is open go to DynamoDB."""
    if consistent:
        return SOURCE_DYNAMODB_CONSISTENT
    if dynamo.dax_enabled() and dynamo.dax_breaker_state() == "closed":
        return SOURCE_DAX
    if dynamo.dax_enabled():
        return f"{SOURCE_DYNAMODB} (DAX breaker {dynamo.dax_breaker_state()})"
    return SOURCE_DYNAMODB


class _Timer:
    def __init__(self, source: str):
        self.source = source

    def __enter__(self) -> _Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed_ms = round((time.perf_counter() - self.started) * 1000, 2)
        if self.source == SOURCE_REDIS:
            _redis_observe(self.elapsed_ms)

    @property
    def provenance(self) -> Provenance:
        return Provenance(source=self.source, elapsed_ms=self.elapsed_ms)


# The console's own Redis reads, for the overview's latency table (dynamo.path_stats covers the
# DynamoDB/DAX paths; nothing else measures Redis reads in this process).
_redis_lock = threading.Lock()
_redis_stats = dynamo.PathStats()


def _redis_observe(elapsed_ms: float) -> None:
    with _redis_lock:
        _redis_stats.observe(elapsed_ms)


# --- summary state --------------------------------------------------------------------------------

def summary_state_of(*, meta: SessionMeta) -> str:
    """none / pending / fresh / stale / failed, from META's summary bookkeeping."""
    raw = (meta.summary_state or "").lower()
    if raw in _PENDING_RAW:
        return "pending"
    if raw in _FAILED_RAW:
        return "failed"
    through = int(meta.summary_through or 0)
    if through <= 0:
        return "none"
    return "fresh" if through >= int(meta.turn_count or 0) else "stale"


# --- sessions list --------------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionRow:
    meta: SessionMeta
    presence: Presence
    summary_state: str
    summary_snippet: str | None


@dataclass(frozen=True)
class BrowsePage:
    rows: list[SessionRow]
    cursor: str | None
    short_reason: str | None
    examined: int  # sessions read from the store for this page (before the summary filter)
    source: str  # "index" or "presence"
    elapsed_ms: float


def _summaries_for(metas: list[SessionMeta]) -> dict[str, Summary]:
    wanted = [(m.pk, keys.summary_sk(int(m.summary_through))) for m in metas if int(m.summary_through or 0) > 0]
    if not wanted:
        return {}
    return {keys.session_id_from_pk(s.pk): s for s in Summary.batch_get(wanted)}


def _rows(metas: list[SessionMeta]) -> list[SessionRow]:
    summaries = _summaries_for(metas)
    with _Timer(SOURCE_REDIS):
        presences = presence_get_many(session_ids=[meta.session_id for meta in metas])
    rows = []
    for meta in metas:
        summary = summaries.get(meta.session_id)
        rows.append(SessionRow(
            meta=meta,
            presence=presences[meta.session_id],
            summary_state=summary_state_of(meta=meta),
            summary_snippet=summary.text[:140] if summary else None,
        ))
    return rows


def session_browse(
    *,
    day_from: date | None = None,
    day_to: date | None = None,
    customer_id: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    summary_state: str | None = None,
    online: bool = False,
    cursor: str | None = None,
    limit: int = 25,
    max_calls: int = 5,
) -> BrowsePage:
    """One page of the staff sessions list.

    The DynamoDB-side filters go to ``session_list``; the summary state is not indexed, so it is
    applied to each page read and the list is read on (at most ``max_calls`` listing calls, each
    asking only for as many sessions as are still missing, so the cursor stays exact) — a page
    that runs out of that budget comes back short with a cursor and says why. ``online`` lists
    from the presence set instead (the authority on who is online; bounded, no further pages).
    """
    if summary_state is not None and summary_state not in SUMMARY_STATES:
        raise InvalidInput(f"summary state must be one of {', '.join(SUMMARY_STATES)}", field="summary")
    started = time.perf_counter()
    if online:
        return _browse_online(day_from=day_from, day_to=day_to, customer_id=customer_id, status=status,
                              channel=channel, summary_state=summary_state, started=started)
    found: list[SessionMeta] = []
    examined = 0
    calls = 0
    short_reason = None
    while True:
        page = session_list(day_from=day_from, day_to=day_to, customer_id=customer_id, status=status,
                            channel=channel, cursor=cursor, limit=limit - len(found))
        calls += 1
        examined += len(page.sessions)
        found += [m for m in page.sessions if summary_state is None or summary_state_of(meta=m) == summary_state]
        cursor = page.cursor
        if page.short_reason:
            short_reason = page.short_reason
            break
        if len(found) >= limit or cursor is None:
            break
        if calls >= max_calls:
            short_reason = f"read budget reached: {examined} sessions examined, {len(found)} matched the summary filter"
            break
    return BrowsePage(rows=_rows(found), cursor=cursor, short_reason=short_reason, examined=examined,
                      source="index", elapsed_ms=_ms(started))


def _browse_online(*, day_from, day_to, customer_id, status, channel, summary_state, started) -> BrowsePage:
    with _Timer(SOURCE_REDIS):
        ids = presence_online(limit=ONLINE_MAX + 1)
    if ids is None:
        return BrowsePage(rows=[], cursor=None, short_reason="presence is unknown: Redis is unavailable",
                          examined=0, source="presence", elapsed_ms=_ms(started))
    truncated = len(ids) > ONLINE_MAX
    metas = session_get_many(session_ids=ids[:ONLINE_MAX])

    def keep(m: SessionMeta) -> bool:
        day = m.started_at.date()
        return ((day_from is None or day >= day_from) and (day_to is None or day <= day_to)
                and (customer_id is None or m.customer_id == customer_id)
                and (status is None or m.status == status) and (channel is None or m.channel == channel)
                and (summary_state is None or summary_state_of(meta=m) == summary_state))

    matched = sorted((m for m in metas if keep(m)), key=lambda m: m.started_at, reverse=True)
    reason = f"only the {ONLINE_MAX} most recently active online sessions are examined" if truncated else None
    return BrowsePage(rows=_rows(matched), cursor=None, short_reason=reason, examined=len(metas),
                      source="presence", elapsed_ms=_ms(started))


# --- one session ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionDetail:
    meta: SessionMeta
    meta_read: Provenance
    turns: TurnPage
    turns_read: Provenance
    summary: Summary | None
    summary_read: Provenance
    summary_state: str
    presence: Presence
    connections: list[str] | None  # None: Redis unavailable
    presence_read: Provenance
    rate: RateDecision | None  # None: Redis unavailable
    rate_read: Provenance


def session_detail(*, session_id: str, turns: int = 50) -> SessionDetail:
    """META, the newest ``turns`` turns, the latest summary, presence and the customer's rate
    window — each with where it was read from and how long it took."""
    with _Timer(_route_label(consistent=False)) as t_meta:
        meta = session_get(session_id=session_id)
    with _Timer(_route_label(consistent=False)) as t_turns:
        page = turns_page(session_id=session_id, limit=turns, meta=meta)
    with _Timer(_route_label(consistent=False)) as t_summary:
        summary = summary_latest(meta=meta)
    with _Timer(SOURCE_REDIS) as t_presence:
        presence = presence_get(session_id=session_id)
        try:
            connections = connections_for_session(session_id=session_id)
        except RedisUnavailable:
            connections = None
    with _Timer(SOURCE_REDIS) as t_rate:
        rate = rate_limit_peek(customer_id=meta.customer_id)
    return SessionDetail(
        meta=meta, meta_read=t_meta.provenance, turns=page, turns_read=t_turns.provenance,
        summary=summary, summary_read=t_summary.provenance, summary_state=summary_state_of(meta=meta),
        presence=presence, connections=connections, presence_read=t_presence.provenance,
        rate=rate, rate_read=t_rate.provenance,
    )


def session_turns_older(*, session_id: str, cursor: str, limit: int = 50) -> tuple[TurnPage, Provenance]:
    """The next older page of the timeline (the cursor comes from the previous page)."""
    with _Timer(_route_label(consistent=False)) as timer:
        page = turns_page(session_id=session_id, cursor=cursor, limit=limit)
    return page, timer.provenance


@dataclass(frozen=True)
class Difference:
    panel: str
    field: str
    shown: Any
    consistent: Any


@dataclass(frozen=True)
class VerifyReport:
    session_id: str
    differences: list[Difference]
    shown_read: Provenance
    consistent_read: Provenance
    turns_checked: int

    @property
    def matches(self) -> bool:
        return not self.differences


def _consistent_turns(*, session_id: str, low: int, high: int) -> list[Turn]:
    if high < low:
        return []
    return list(Turn.query(keys.session_pk(session_id), Turn.sk.between(keys.turn_sk(low), keys.turn_sk(high)),
                           consistent_read=True))


def session_verify(*, session_id: str, turns: int = 50) -> VerifyReport:
    """Re-read what the session page shows with ConsistentRead (bypassing DAX) and list every
    field that differs: META, the newest ``turns`` turns and the latest summary."""
    with _Timer(_route_label(consistent=False)) as t_shown:
        meta = session_get(session_id=session_id)
        shown_turns = {int(t.seq): t for t in turns_page(session_id=session_id, limit=turns, meta=meta).turns}
        summary = summary_latest(meta=meta)
    with _Timer(SOURCE_DYNAMODB_CONSISTENT) as t_fresh:
        fresh_meta = session_get(session_id=session_id, consistent=True)
        count = int(fresh_meta.turn_count)
        fresh_turns = {int(t.seq): t for t in _consistent_turns(session_id=session_id, low=max(1, count - turns + 1), high=count)}
        fresh_summary = summary_latest(meta=fresh_meta, consistent=True)
    diffs: list[Difference] = []
    a, b = session_dict(meta), session_dict(fresh_meta)
    diffs += [Difference("session", k, a[k], b[k]) for k in a if a[k] != b[k]]
    for attr in ("summary_state", "summary_error"):
        if getattr(meta, attr) != getattr(fresh_meta, attr):
            diffs.append(Difference("session", attr, getattr(meta, attr), getattr(fresh_meta, attr)))
    for seq in sorted(set(shown_turns) | set(fresh_turns), reverse=True):
        if seq not in fresh_turns and fresh_turns and seq < min(fresh_turns):
            continue  # older than the consistent window: not compared
        x = turn_dict(shown_turns[seq]) if seq in shown_turns else None
        y = turn_dict(fresh_turns[seq]) if seq in fresh_turns else None
        if x != y:
            diffs.append(Difference("timeline", f"turn #{seq}", "missing" if x is None else x["text"],
                                    "missing" if y is None else y["text"]))
    sa, sb = summary_dict(summary), summary_dict(fresh_summary)
    if sa != sb:
        diffs.append(Difference("summary", "summary", sa and f"turns 1–{sa['through_seq']}", sb and f"turns 1–{sb['through_seq']}"))
    return VerifyReport(session_id=session_id, differences=diffs, shown_read=t_shown.provenance,
                        consistent_read=t_fresh.provenance, turns_checked=len(fresh_turns))


# --- exports --------------------------------------------------------------------------------------

EXPORT_MAX_SESSIONS = 10_000
CSV_COLUMNS = ["session_id", "customer_id", "channel", "locale", "status", "started_at", "seq", "role",
               "created_at", "model", "latency_ms", "tokens_in", "tokens_out", "text"]


def session_turns_all(*, session_id: str) -> Iterator[Turn]:
    """Every turn, oldest first; PynamoDB pages the Query lazily, so memory stays flat."""
    return Turn.query(keys.session_pk(session_id), Turn.sk.startswith(keys.TURN_PREFIX))


def session_iter_filtered(
    *,
    day_from: date | None = None,
    day_to: date | None = None,
    customer_id: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    summary_state: str | None = None,
    online: bool = False,
    max_sessions: int = EXPORT_MAX_SESSIONS,
) -> Iterator[SessionMeta]:
    """Every session matching the console's filters, page by page through the same listing."""
    cursor, served = None, 0
    while served < max_sessions:
        page = session_browse(day_from=day_from, day_to=day_to, customer_id=customer_id, status=status,
                              channel=channel, summary_state=summary_state, online=online, cursor=cursor,
                              limit=min(100, max_sessions - served))
        for row in page.rows:
            yield row.meta
        served += len(page.rows)
        cursor = page.cursor
        if cursor is None:
            return


def customer_window() -> tuple[date, date]:
    """The widest day range a listing accepts: "all sessions of a customer" within retention."""
    today = utcnow().date()
    return today - timedelta(days=MAX_DAYS - 1), today


def export_json_chunks(*, sessions: Iterable[SessionMeta]) -> Iterator[bytes]:
    """``{"sessions": [{"session", "summary", "turns": [...]}, ...]}``, one turn per chunk."""
    yield b'{"sessions":['
    for n, meta in enumerate(sessions):
        head = {"session": session_dict(meta), "summary": summary_dict(summary_latest(meta=meta))}
        prefix = b"," if n else b""
        yield prefix + _json(head)[:-1] + b',"turns":['
        for i, turn in enumerate(session_turns_all(session_id=meta.session_id)):
            yield (b"," if i else b"") + _json(turn_dict(turn))
        yield b"]}"
    yield b"]}\n"


def export_csv_chunks(*, sessions: Iterable[SessionMeta]) -> Iterator[bytes]:
    """One row per turn, with the session's columns repeated (spreadsheet-friendly, BOM for Excel)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> bytes:
        data = buffer.getvalue().encode("utf-8")
        buffer.seek(0)
        buffer.truncate()
        return data

    writer.writerow(CSV_COLUMNS)
    yield "\ufeff".encode() + flush()
    for meta in sessions:
        s = session_dict(meta)
        for turn in session_turns_all(session_id=meta.session_id):
            t = turn_dict(turn)
            writer.writerow([s["session_id"], s["customer_id"], s["channel"], s["locale"], s["status"],
                             s["started_at"], t["seq"], t["role"], t["created_at"], t["model"] or "",
                             "" if t["latency_ms"] is None else t["latency_ms"],
                             "" if t["tokens_in"] is None else t["tokens_in"],
                             "" if t["tokens_out"] is None else t["tokens_out"], _csv_safe(t["text"])])
            yield flush()


def _csv_safe(text: str) -> str:
    # Chat text is customer input: a leading = + - @ would run as a formula in a spreadsheet.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _json(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- overview -------------------------------------------------------------------------------------

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


def overview_metrics() -> Overview:
    """The overview's numbers and chart series, each from its own source (see the template)."""
    with _Timer(SOURCE_REDIS):
        online = presence_online_count()
        rate = rate_limit_stats(minutes=15)
        cache = context_cache_stats(minutes=15)
        hit_ratio = context_cache_hit_ratio(minutes=15)
    backlog, backlog_capped = summary_backlog()
    stats = dynamo.path_stats()
    with _redis_lock:
        redis_row = LatencyRow("Redis", _redis_stats.calls, _redis_stats.quantile_ms(0.5), _redis_stats.quantile_ms(0.95))
    latency = [redis_row] + [
        LatencyRow(label, stats.get(name, {}).get("calls", 0), stats.get(name, {}).get("p50_ms"), stats.get(name, {}).get("p95_ms"))
        for name, label in (("dax", "DAX"), ("dynamodb", "DynamoDB"), ("fallback", "DynamoDB (DAX fallback)"))
    ]
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
        latency=latency,
        series=series,
    )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@dataclass(frozen=True)
class SummaryPanel:
    meta: SessionMeta
    summary: Summary | None
    state: str
    read: Provenance


def session_summary_panel(*, session_id: str) -> SummaryPanel:
    """META's summary bookkeeping and the latest summary, strongly consistent: the panel polls
    while a regeneration runs and must not show DAX's older copy of META."""
    with _Timer(SOURCE_DYNAMODB_CONSISTENT) as timer:
        meta = session_get(session_id=session_id, consistent=True)
        summary = summary_latest(meta=meta, consistent=True)
    return SummaryPanel(meta=meta, summary=summary, state=summary_state_of(meta=meta), read=timer.provenance)
