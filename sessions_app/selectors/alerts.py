"""Reads of the alert sweep's tables (models.alerts): what the overview shows about alerts, and
the stored metric samples the rules and the overview take their windows from.

A window is "now minus the newest sample at least that old". Before the sweep has run that long
(a fresh deploy, a wiped database) there is no such sample: :func:`sample_pair` then falls back
to the oldest sample there is and says the window is short, and the rules decide whether a short
window is enough to judge (services.alerts: not under half its length).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from ..clock import utcnow
from ..models import AlertEvent, AlertState, MetricSample
from .metrics import MetricsReading

# Keys of MetricSample.data.
READING = "reading"
DAX = "dax"
# How many samples a lookup for a key looks through (a sample whose DAX stats were unreadable
# has no "dax" counters; a few in a row is an outage the rules report anyway).
_SCAN = 30
EVENTS_SHOWN = 10


@dataclass(frozen=True)
class SamplePair:
    """The two samples a window is the difference of. ``short``: no sample was old enough, so
    ``older`` is the oldest there is (or None: ``newer`` is the only one)."""

    newer: MetricSample
    older: MetricSample | None
    short: bool

    @property
    def seconds(self) -> float | None:
        if self.older is None:
            return None
        return (self.newer.taken_at - self.older.taken_at).total_seconds()


def _first_with(rows, key: str) -> MetricSample | None:
    return next((row for row in rows if row.data.get(key) is not None), None)


def sample_pair(*, seconds: float, now: datetime | None = None, key: str = READING) -> SamplePair | None:
    """``newer``: the newest sample taken at or before ``now`` that holds ``key``; ``older``: the
    newest one taken at least ``seconds`` before ``now`` that holds it, else the oldest one before
    ``newer`` (``short``). None when no sample holds ``key``."""
    now = now or utcnow()
    newer = _first_with(MetricSample.objects.filter(taken_at__lte=now).order_by("-taken_at")[:_SCAN], key)
    if newer is None:
        return None
    cutoff = now - timedelta(seconds=seconds)
    older = _first_with(
        MetricSample.objects.filter(taken_at__lte=cutoff, taken_at__lt=newer.taken_at).order_by("-taken_at")[:_SCAN],
        key)
    if older is not None:
        return SamplePair(newer=newer, older=older, short=False)
    oldest = _first_with(
        MetricSample.objects.filter(taken_at__gt=cutoff, taken_at__lt=newer.taken_at).order_by("taken_at")[:_SCAN], key)
    return SamplePair(newer=newer, older=oldest, short=True)


def reading_of(sample: MetricSample | None) -> MetricsReading | None:
    if sample is None or not isinstance(sample.data.get(READING), dict):
        return None
    return MetricsReading.from_json(sample.data[READING])


def sample_before(seconds: float, *, now: datetime | None = None) -> MetricsReading | None:
    """The newest stored sample at least ``seconds`` old, as a MetricsReading; None when the
    sweep has not stored one that old yet."""
    now = now or utcnow()
    rows = MetricSample.objects.filter(taken_at__lte=now - timedelta(seconds=seconds)).order_by("-taken_at")[:_SCAN]
    return reading_of(_first_with(rows, READING))


# --- minimum samples ------------------------------------------------------------------------------
#
# One source for "enough traffic to judge": the alert rules (services.alerts) and every red band
# of the overview use these, so the console never shows red on what the sweep calls noise.

def min_cache_lookups() -> int:
    """Lookups a cache hit ratio (DAX item/query, the Redis context cache) needs in its window."""
    return int(settings.ALERT_MIN_REQUESTS)


def min_http_requests() -> int:
    """Requests the HTTP 5xx error rate needs in its window."""
    return int(settings.ALERT_MIN_HTTP_REQUESTS)


# --- the overview's alerts panel ------------------------------------------------------------------

def alert_webhook_missing() -> str | None:
    """Why transitions are not posted anywhere, or None when the webhook is configured."""
    if not settings.ALERT_WEBHOOK_URL:
        return "ALERT_WEBHOOK_URL is not set"
    if not settings.ALERT_WEBHOOK_SECRET:
        return "ALERT_WEBHOOK_SECRET is not set: alerts are never sent unsigned"
    return None


@dataclass(frozen=True)
class FiringAlert:
    rule: str
    since: datetime | None
    value: float | None
    threshold: float | None
    message: str
    notified: bool  # the "fired" notification reached the webhook
    notify_error: str  # the last failed attempt's error ("" when none)


@dataclass(frozen=True)
class AlertEventRow:
    rule: str
    kind: str  # fired / resolved
    at: datetime
    value: float | None
    message: str
    delivered: bool
    delivery_error: str


@dataclass(frozen=True)
class UncheckedRule:
    """A rule whose last check could not judge (source unreadable, too few requests, a short
    window): its state was left as it was, for this reason."""

    rule: str
    state: str
    note: str
    checked_at: datetime | None


@dataclass(frozen=True)
class AlertsPanel:
    firing: list[FiringAlert]
    events: list[AlertEventRow]  # newest first, the last EVENTS_SHOWN
    unchecked: list[UncheckedRule]
    webhook_configured: bool
    webhook_missing: str | None  # why not, when not
    last_evaluated_at: datetime | None  # the newest stored sample (None: the sweep never ran)

    @property
    def any_firing(self) -> bool:
        return bool(self.firing)


def alerts_panel(*, events: int = EVENTS_SHOWN) -> AlertsPanel:
    """Firing alerts, the last ``events`` transitions, and whether anyone is told (three small
    queries on the default database)."""
    states = list(AlertState.objects.all())
    # Longest firing first (a firing state always has its ``since``: the transition set it).
    firing_states = sorted((s for s in states if s.state == AlertState.STATE_FIRING), key=lambda s: s.since)
    firing = [
        FiringAlert(rule=s.rule, since=s.since, value=s.value, threshold=s.threshold, message=s.message,
                    notified=s.notified_at is not None, notify_error=s.notify_error)
        for s in firing_states
    ]
    unchecked = [UncheckedRule(rule=s.rule, state=s.state, note=s.check_note, checked_at=s.checked_at)
                 for s in states if s.check_note]
    rows = [
        AlertEventRow(rule=e.rule, kind=e.kind, at=e.at, value=e.value, message=e.message, delivered=e.delivered,
                      delivery_error=e.delivery_error)
        for e in AlertEvent.objects.order_by("-at", "-id")[:events]
    ]
    newest = MetricSample.objects.order_by("-taken_at").values_list("taken_at", flat=True).first()
    missing = alert_webhook_missing()
    return AlertsPanel(firing=firing, events=rows, unchecked=unchecked, webhook_configured=missing is None,
                       webhook_missing=missing, last_evaluated_at=newest)
