"""The alert sweep: rules over the metrics, evaluated by Celery beat (``sessions_app.alerts_evaluate``
every ``ALERT_EVALUATE_SECONDS``), with firing/resolved state, history, and a signed webhook.

Each evaluation (:func:`evaluate`):

1. stores a :class:`~sessions_app.models.MetricSample` — the metrics' cumulative totals
   (``selectors.metrics.current_reading``) and the local DAX nodes' cache counters — and prunes
   samples older than ``SAMPLE_RETENTION``;
2. checks every rule of :data:`RULES` over its window. A windowed rule compares the sample just
   stored with the newest one at least a window old; before one that old exists it uses the
   oldest and judges only once that covers half the window. A ratio needs a minimum number of
   requests in its window (a 0 % band after 3 requests is noise);
3. applies transitions to :class:`~sessions_app.models.AlertState`: ``ok`` → ``firing`` records
   a ``fired`` :class:`~sessions_app.models.AlertEvent`, ``firing`` → ``ok`` a ``resolved`` one. A
   rule that stays firing records and sends nothing more;
4. posts each undelivered transition to ``ALERT_WEBHOOK_URL`` (Slack-compatible JSON, signed
   like the bot webhook: services.webhooks.signed_headers). A failed POST is tried again on the
   next evaluation, the event's row updated, never a second one added.

A rule that cannot judge — its source unreadable (Redis down, DAX stats unreachable), too few
requests, a window too short — leaves its state as it was and says why in
``AlertState.check_note``: an outage of the metrics is not a recovery, and a thin sample neither
fires nor resolves, so nothing flaps on it.

Sources and their limits: the HTTP error rate and the breaker come from the Prometheus metrics
this process can see — every process on the host in multiprocess mode (PROMETHEUS_MULTIPROC_DIR
shared by gunicorn and Celery), this worker alone otherwise. The Redis context cache counters are
fleet-wide per-minute hashes read at the wall clock's minute (``context_cache_stats``), whatever
``now`` says. deploy/prometheus/alerts.yml carries the rules marked ``prometheus``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Callable

from django.conf import settings
from django.db import transaction
from django.db.models import F
from pynamodb.exceptions import PynamoDBException

from ..clock import utcnow
from ..exceptions import StoreUnavailable
from ..models import AlertEvent, AlertState, MetricSample
from ..observability import metrics
from ..realtime import context_cache_stats
from ..selectors.alerts import (
    DAX,
    READING,
    alert_webhook_missing,
    min_cache_lookups,
    min_http_requests,
    reading_of,
    sample_pair,
)
from ..selectors.dax_cache import DaxHitRatios, DaxStatsUnavailable, dax_hit_ratios, dax_node_counters, dax_source
from ..selectors.metrics import current_reading, window
from ..selectors.stream import stream_status
from ..selectors.summaries import summary_backlog_count
from .webhooks import HEADER_IDEMPOTENCY_KEY, signed_headers, webhook_post

log = logging.getLogger(__name__)

SAMPLE_RETENTION = timedelta(hours=2)
# A windowed rule judges a window this much of its length or longer (before the sweep has run a
# whole window, e.g. right after a deploy).
MIN_WINDOW_FRACTION = 0.5
WEBHOOK = "alerts"  # the label of metrics.WEBHOOK_DELIVERIES
MAX_ERROR_CHARS = 500
COLORS = {AlertEvent.KIND_FIRED: "#d92d20", AlertEvent.KIND_RESOLVED: "#2e7d32"}


# --- rules ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """One rule's reading. ``breached`` None: it could not judge (``note`` says why), and its
    state stays as it was."""

    breached: bool | None
    value: float | None = None
    sample: int | None = None  # the requests behind a ratio
    window_seconds: float | None = None  # the window actually measured
    note: str = ""


@dataclass(frozen=True)
class Rule:
    name: str
    title: str
    source: str  # where the value comes from (docs, the report)
    comparison: str  # "below" or "above": which side of the threshold fires
    unit: str  # "ratio", "count", "seconds" or "processes": how values are shown
    window_seconds: int  # 0: a level, read as it is now
    threshold: Callable[[], float]  # read from the settings at each evaluation
    check: Callable[[_Evaluation, Rule], Check]
    min_sample: Callable[[], int] | None = None
    prometheus: bool = True  # deploy/prometheus/alerts.yml has the same rule

    def breached_by(self, value: float) -> bool:
        return value < self.threshold() if self.comparison == "below" else value > self.threshold()


class _Evaluation:
    """What one evaluation reads, each source once (two DAX rules share one read)."""

    def __init__(self, now: datetime, sample: MetricSample) -> None:
        self.now = now
        self.sample = sample
        self._dax: dict[int, DaxHitRatios | None | DaxStatsUnavailable] = {}

    def dax(self, seconds: int) -> DaxHitRatios | None:
        if seconds not in self._dax:
            try:
                self._dax[seconds] = dax_hit_ratios(seconds=seconds, now=self.now)
            except DaxStatsUnavailable as exc:
                self._dax[seconds] = exc
        found = self._dax[seconds]
        if isinstance(found, DaxStatsUnavailable):
            raise found
        return found


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def _ratio_check(rule: Rule, *, numerator: float, denominator: float, seconds: float, short: bool,
                 noun: str) -> Check:
    if short and seconds < rule.window_seconds * MIN_WINDOW_FRACTION:
        return Check(None, note=f"only {_minutes(seconds)} of the {_minutes(rule.window_seconds)} window "
                                "measured so far")
    needed = rule.min_sample() if rule.min_sample else 0
    value = numerator / denominator if denominator else None
    if denominator < needed:
        return Check(None, value=value, sample=int(denominator), window_seconds=seconds,
                     note=f"{int(denominator)} {noun} in the last {_minutes(seconds)}, fewer than the {needed} "
                          "needed to judge")
    return Check(rule.breached_by(value), value=value, sample=int(denominator), window_seconds=seconds)


def _check_dax(which: str) -> Callable[[_Evaluation, Rule], Check]:
    def check(ev: _Evaluation, rule: Rule) -> Check:
        if dax_source() is None:
            return Check(None, note="DAX hit ratios have no source: DAX_STATS_URL and DAX_CLUSTER_NAME are unset")
        try:
            ratios = ev.dax(rule.window_seconds)
        except DaxStatsUnavailable as exc:
            return Check(None, note=str(exc)[:300])
        if ratios is None:
            return Check(None, note="no DAX statistics for the window yet")
        hits = ratios.item_hits if which == "item" else ratios.query_hits
        requests = ratios.item_requests if which == "item" else ratios.query_requests
        return _ratio_check(rule, numerator=hits, denominator=requests, seconds=ratios.seconds, short=ratios.short,
                            noun=f"{which} cache lookups")

    return check


def _check_context(ev: _Evaluation, rule: Rule) -> Check:
    stats = context_cache_stats(minutes=rule.window_seconds // 60)
    if stats is None:
        return Check(None, note="Redis is unavailable: the context cache counters could not be read")
    hits = sum(m.hits for m in stats)
    total = hits + sum(m.misses for m in stats)
    return _ratio_check(rule, numerator=hits, denominator=total, seconds=rule.window_seconds, short=False,
                        noun="context loads")


def _check_error_rate(ev: _Evaluation, rule: Rule) -> Check:
    pair = sample_pair(seconds=rule.window_seconds, now=ev.now, key=READING)
    if pair is None or pair.older is None:
        return Check(None, note="no earlier metrics sample to compare with yet")
    w = window(reading_of(pair.newer), reading_of(pair.older))
    return _ratio_check(rule, numerator=w.value("http:status:5xx"), denominator=w.value("http:requests"),
                        seconds=pair.seconds or 0.0, short=pair.short, noun="requests")


def _check_redis_degraded(ev: _Evaluation, rule: Rule) -> Check:
    # Redis down is what the context rule cannot see (its counters live in Redis): the processes'
    # own count of calls that went on without it can.
    pair = sample_pair(seconds=rule.window_seconds, now=ev.now, key=READING)
    if pair is None or pair.older is None:
        return Check(None, note="no earlier metrics sample to compare with yet")
    if pair.short and (pair.seconds or 0.0) < rule.window_seconds * MIN_WINDOW_FRACTION:
        return Check(None, note=f"only {_minutes(pair.seconds or 0.0)} of the {_minutes(rule.window_seconds)} window "
                                "measured so far")
    w = window(reading_of(pair.newer), reading_of(pair.older))
    value = sum(w.prefixed("degraded:").values())
    return Check(rule.breached_by(value), value=value, window_seconds=pair.seconds)


def _check_breaker(ev: _Evaluation, rule: Rule) -> Check:
    value = reading_of(ev.sample).value("dax:breaker_open")
    return Check(rule.breached_by(value), value=value)


def _check_backlog(ev: _Evaluation, rule: Rule) -> Check:
    waiting_since = ev.now - timedelta(minutes=settings.SUMMARY_IDLE_MINUTES)
    try:
        count = summary_backlog_count(waiting_since=waiting_since)
    except StoreUnavailable as exc:
        return Check(None, note=f"the summary backlog could not be counted: {exc}"[:300])
    except PynamoDBException as exc:
        return Check(None, note=f"the summary backlog could not be counted: {type(exc).__name__}: {exc}"[:300])
    metrics.set_level(metrics.SUMMARY_BACKLOG, count)
    return Check(rule.breached_by(count), value=float(count))


def _check_stream_lag(ev: _Evaluation, rule: Rule) -> Check:
    status = stream_status(seconds=rule.window_seconds, shards=False)
    if status.error:
        return Check(None, note=f"the change feed could not be read: {status.error}"[:300])
    if status.stream_arn is None:
        return Check(None, note="the table has no stream")
    if status.progress is None:
        return Check(None, note="Redis is unavailable: the consumers' progress could not be read")
    if status.progress.lag_p95_ms is None:
        # Idle, or no consumer running: either way no lag was measured, which is not a recovery.
        return Check(None, note=f"no change record processed in the last {_minutes(rule.window_seconds)}")
    value = status.progress.lag_p95_ms / 1000
    metrics.set_level(metrics.STREAM_LAG_P95, value)
    return Check(rule.breached_by(value), value=value, sample=status.progress.records,
                 window_seconds=rule.window_seconds)


_LOCAL_OR_CLOUDWATCH = "the local DAX nodes' /stats between stored samples, or CloudWatch AWS/DAX (production)"

RULES: tuple[Rule, ...] = (
    Rule(name="dax_item_hit_ratio_low", title="DAX item cache hit ratio",
         source=f"ItemCacheHits / (ItemCacheHits + ItemCacheMisses): {_LOCAL_OR_CLOUDWATCH}",
         comparison="below", unit="ratio", window_seconds=15 * 60, threshold=lambda: settings.ALERT_HIT_RATIO_BELOW,
         min_sample=min_cache_lookups, check=_check_dax("item")),
    Rule(name="dax_query_hit_ratio_low", title="DAX query cache hit ratio",
         source=f"QueryCacheHits / (QueryCacheHits + QueryCacheMisses): {_LOCAL_OR_CLOUDWATCH}",
         comparison="below", unit="ratio", window_seconds=15 * 60, threshold=lambda: settings.ALERT_HIT_RATIO_BELOW,
         min_sample=min_cache_lookups, check=_check_dax("query")),
    Rule(name="context_hit_ratio_low", title="Redis context cache hit ratio",
         source="the Redis per-minute context cache hit/miss counters (fleet-wide), context_cache_stats",
         comparison="below", unit="ratio", window_seconds=15 * 60, threshold=lambda: settings.ALERT_HIT_RATIO_BELOW,
         min_sample=min_cache_lookups, check=_check_context),
    Rule(name="http_error_rate_high", title="HTTP 5xx error rate",
         source="mangaassist_http_request_duration_seconds_count, 5xx / all, between stored samples",
         comparison="above", unit="ratio", window_seconds=5 * 60, threshold=lambda: settings.ALERT_ERROR_RATE_ABOVE,
         min_sample=min_http_requests, check=_check_error_rate),
    Rule(name="redis_degraded", title="Calls that went on without Redis",
         source="mangaassist_redis_degraded_events_total (every call site), between stored samples",
         comparison="above", unit="count", window_seconds=5 * 60, threshold=lambda: 0.0,
         check=_check_redis_degraded),
    Rule(name="dax_breaker_open", title="DAX circuit breaker open",
         source="mangaassist_dax_breaker_open now (processes whose breaker is open or half-open)",
         comparison="above", unit="processes", window_seconds=0, threshold=lambda: 0.0, check=_check_breaker),
    Rule(name="summary_backlog_high", title="Summary backlog",
         source="sessions waiting SUMMARY_IDLE_MINUTES or more for a summary (summary_due index COUNT), now",
         comparison="above", unit="count", window_seconds=0, threshold=lambda: float(settings.ALERT_SUMMARY_BACKLOG),
         check=_check_backlog),
    Rule(name="stream_lag_high", title="Change feed lag (p95)",
         source="the stream consumers' lag p95 over the last minute (their progress records in Redis)",
         comparison="above", unit="seconds", window_seconds=60,
         threshold=lambda: float(settings.STREAM_LAG_ALERT_SECONDS), check=_check_stream_lag),
)
RULE_NAMES = tuple(rule.name for rule in RULES)


# --- the message and the webhook body --------------------------------------------------------------

def _show(rule: Rule, value: float | None) -> str:
    if value is None:
        return "n/a"
    if rule.unit == "ratio":
        return f"{100 * value:.1f} %"
    if rule.unit == "seconds":
        return f"{value:.1f} s"
    return f"{value:g}"


def _comparison(rule: Rule) -> str:
    return f"{'<' if rule.comparison == 'below' else '>'} {_show(rule, rule.threshold())}"


def _message(rule: Rule, check: Check, *, firing: bool) -> str:
    """"DAX item cache hit ratio: 41.7 % (below 80.0 %) over the last 15 min, 120 requests"."""
    over = f" over the last {_minutes(check.window_seconds)}" if check.window_seconds else ""
    behind = f", {check.sample} requests" if check.sample is not None and rule.unit == "ratio" else ""
    if firing:
        side = "below" if rule.comparison == "below" else "above"
        return f"{rule.title}: {_show(rule, check.value)} ({side} {_show(rule, rule.threshold())}){over}{behind}"
    return f"{rule.title}: back at {_show(rule, check.value)} (alert at {_comparison(rule)}){over}{behind}"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def webhook_payload(rule: Rule, *, kind: str, check: Check, message: str, since: datetime) -> dict:
    """The JSON posted for one transition: Slack's ``text`` and ``attachments`` (an incoming
    webhook shows them as they are), and ``alert`` for receivers that read fields, not prose."""
    state = "firing" if kind == AlertEvent.KIND_FIRED else "resolved"
    console_url = f"{settings.CONSOLE_URL}/" if settings.CONSOLE_URL else None
    window_seconds = int(check.window_seconds or rule.window_seconds)
    fields = [
        {"title": "Rule", "value": rule.name, "short": True},
        {"title": "Value", "value": _show(rule, check.value), "short": True},
        {"title": "Threshold", "value": _comparison(rule), "short": True},
        {"title": "Window", "value": _minutes(window_seconds) if window_seconds else "now", "short": True},
        {"title": "Since", "value": _iso(since), "short": True},
    ]
    if check.sample is not None and rule.unit == "ratio":
        fields.append({"title": "Requests", "value": str(check.sample), "short": True})
    attachment = {"color": COLORS[kind], "title": rule.title, "fields": fields, "footer": "MangaAssist Console",
                  "ts": int(since.timestamp())}
    if console_url:
        attachment["title_link"] = console_url
    return {
        "text": f"[{state.upper()}] {message}",
        "attachments": [attachment],
        "alert": {"rule": rule.name, "state": state, "value": check.value, "threshold": rule.threshold(),
                  "window_seconds": window_seconds, "since": _iso(since), "console_url": console_url},
    }


def webhook_body(payload: dict) -> bytes:
    """Compact UTF-8 JSON, signed as sent."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# --- evaluation ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Transition:
    rule: str
    kind: str  # AlertEvent.KIND_FIRED or KIND_RESOLVED
    at: datetime
    value: float | None
    threshold: float
    message: str
    event_id: int
    delivered: bool = False
    error: str | None = None  # why it was not delivered (yet)


def sample_store(*, now: datetime) -> MetricSample:
    """Store the totals now (stamped ``now``) and drop samples past SAMPLE_RETENTION."""
    reading = current_reading()
    reading.at = now.timestamp()  # the sample's own time, so windows measure what the rules asked
    sample = MetricSample.objects.create(taken_at=now, data={READING: reading.to_json(), DAX: dax_node_counters()})
    MetricSample.objects.filter(taken_at__lt=now - SAMPLE_RETENTION).delete()
    return sample


def _apply(rule: Rule, check: Check, *, now: datetime) -> Transition | None:
    """Record the check on the rule's state; a change of state adds its event (one transaction)."""
    threshold = rule.threshold()
    with transaction.atomic():
        state, _ = AlertState.objects.select_for_update().get_or_create(
            rule=rule.name, defaults={"state": AlertState.STATE_OK, "since": now, "threshold": threshold})
        state.checked_at, state.threshold = now, threshold
        if check.breached is None:
            if state.check_note != check.note:
                log.info("alert %s left %s: %s", rule.name, state.state, check.note)
            state.check_note = check.note[:300]
            state.save(update_fields=["checked_at", "threshold", "check_note"])
            return None
        state.check_note = ""
        state.value = check.value
        wanted = AlertState.STATE_FIRING if check.breached else AlertState.STATE_OK
        if wanted == state.state:
            if wanted == AlertState.STATE_FIRING:
                state.message = _message(rule, check, firing=True)[:500]
            state.save(update_fields=["checked_at", "threshold", "check_note", "value", "message"])
            return None
        firing = wanted == AlertState.STATE_FIRING
        kind = AlertEvent.KIND_FIRED if firing else AlertEvent.KIND_RESOLVED
        message = _message(rule, check, firing=firing)[:500]
        event = AlertEvent.objects.create(
            rule=rule.name, kind=kind, at=now, value=check.value, threshold=threshold, message=message,
            payload=webhook_payload(rule, kind=kind, check=check, message=message, since=now))
        # An earlier transition still undelivered is news no longer: this one is sent instead.
        AlertEvent.objects.filter(rule=rule.name, delivered=False, abandoned=False, pk__lt=event.pk).update(
            abandoned=True, delivery_error=f"superseded by the {kind} event of {_iso(now)} before it was delivered")
        state.state, state.since, state.message, state.event = wanted, now, message, event
        state.notified_at, state.notify_error, state.notify_attempts = None, "", 0
        state.save()
    log.warning("alert %s %s: %s", rule.name, kind, message)
    return Transition(rule=rule.name, kind=kind, at=now, value=check.value, threshold=threshold, message=message,
                      event_id=event.pk)


def _deliver(state: AlertState, *, now: datetime) -> tuple[bool, str | None]:
    """One POST of the state's undelivered event, claimed first (``notify_attempts`` n → n+1), so
    two evaluations running at once do not both send it. Returns (delivered, error)."""
    event = state.event
    missing = alert_webhook_missing()
    if missing:
        AlertState.objects.filter(pk=state.pk).update(notify_error=f"not sent: {missing}")
        AlertEvent.objects.filter(pk=event.pk, delivered=False).update(delivery_error=f"not sent: {missing}")
        return False, missing
    claimed = AlertState.objects.filter(pk=state.pk, event_id=event.pk, notify_attempts=state.notify_attempts,
                                        notified_at__isnull=True).update(notify_attempts=F("notify_attempts") + 1)
    if not claimed:
        return False, "another evaluation is delivering it"
    body = webhook_body(event.payload)
    headers = {**signed_headers(secret=settings.ALERT_WEBHOOK_SECRET, body=body),
               HEADER_IDEMPOTENCY_KEY: f"alert-{event.pk}"}
    response = webhook_post(url=settings.ALERT_WEBHOOK_URL, body=body, headers=headers,
                            timeout=settings.ALERT_WEBHOOK_TIMEOUT)
    attempt = state.notify_attempts + 1
    if response.ok:
        metrics.count(metrics.WEBHOOK_DELIVERIES, WEBHOOK, "delivered")
        AlertEvent.objects.filter(pk=event.pk).update(delivered=True, delivered_at=now, delivery_error="")
        AlertState.objects.filter(pk=state.pk, event_id=event.pk).update(notified_at=now, notify_error="")
        log.info("alert %s %s delivered (attempt %d)", event.rule, event.kind, attempt)
        return True, None
    error = (response.error or "unknown error")[:MAX_ERROR_CHARS]
    outcome = "gave_up" if response.permanent else "failed"
    metrics.count(metrics.WEBHOOK_DELIVERIES, WEBHOOK, outcome)
    AlertEvent.objects.filter(pk=event.pk).update(delivery_error=error, abandoned=response.permanent)
    AlertState.objects.filter(pk=state.pk, event_id=event.pk).update(notify_error=error)
    log.warning("alert %s %s not delivered (attempt %d, %s): %s", event.rule, event.kind, attempt,
                "given up" if response.permanent else "again at the next evaluation", error)
    return False, error


def evaluate(now: datetime | None = None) -> list[Transition]:
    """Store a sample, check every rule, record transitions, post what is undelivered (the new
    transitions and earlier ones whose POST failed). Returns this evaluation's transitions, with
    whether each reached the webhook. Idempotent: running it again at once finds no transition
    (every window is as it was) and has nothing left to post."""
    now = now or utcnow()
    sample = sample_store(now=now)
    ev = _Evaluation(now, sample)
    transitions: list[Transition] = []
    for rule in RULES:
        try:
            check = rule.check(ev, rule)
        except Exception as exc:  # noqa: BLE001 - one rule's bug or outage must not stop the others
            log.exception("alert rule %s could not be checked", rule.name)
            check = Check(None, note=f"the check failed: {type(exc).__name__}: {exc}"[:300])
        transition = _apply(rule, check, now=now)
        if transition is not None:
            transitions.append(transition)

    results: dict[int, tuple[bool, str | None]] = {}
    pending = AlertState.objects.select_related("event").filter(
        event__isnull=False, notified_at__isnull=True, event__delivered=False, event__abandoned=False)
    for state in pending:
        results[state.event_id] = _deliver(state, now=now)
    return [replace(t, delivered=results.get(t.event_id, (False, None))[0],
                    error=results.get(t.event_id, (False, "not attempted"))[1]) for t in transitions]
