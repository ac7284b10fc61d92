"""The console's and the alert rules' view of the metrics (observability.metrics): the same
numbers ``/metrics`` exposes, reduced to what they show, and turned into rates over a window.

A :class:`MetricsReading` is a compact, JSON-able reduction of the cumulative totals at one
moment (counters by the labels the console shows, latency histograms by route). Two readings give
a window: the difference of two cumulative totals is what happened between them, so the alert
sweep stores one reading a minute (services.alerts) and the overview compares now with the
newest stored reading at least ``window`` old. A process that restarted (its counters back at
zero) can make a difference negative: it is clamped at zero, as Prometheus' ``increase()`` does.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from ..observability import metrics

_BOUNDS = [*(float(b) for b in metrics.LATENCY_BUCKETS), math.inf]


@dataclass
class MetricsReading:
    at: float
    values: dict[str, float] = field(default_factory=dict)
    # Cumulative bucket counts, one per bound of metrics.LATENCY_BUCKETS plus +Inf.
    buckets: dict[str, list[float]] = field(default_factory=dict)
    mode: str = "process"  # observability.metrics.aggregate_mode()

    def to_json(self) -> dict:
        return {"at": self.at, "values": self.values, "buckets": self.buckets, "mode": self.mode}

    @classmethod
    def from_json(cls, data: dict) -> MetricsReading:
        return cls(at=float(data["at"]), values={k: float(v) for k, v in data.get("values", {}).items()},
                   buckets={k: [float(x) for x in v] for k, v in data.get("buckets", {}).items()},
                   mode=str(data.get("mode", "process")))

    def value(self, key: str) -> float:
        return self.values.get(key, 0.0)

    def prefixed(self, prefix: str) -> dict[str, float]:
        """``{rest: value}`` of every value named ``prefix + rest``."""
        return {k[len(prefix):]: v for k, v in self.values.items() if k.startswith(prefix)}


def _add(target: dict[str, float], key: str, value: float) -> None:
    target[key] = target.get(key, 0.0) + value


def _add_bucket(target: dict[str, list[float]], key: str, le: str, value: float) -> None:
    bound = math.inf if le in ("+Inf", "inf") else float(le)
    row = target.setdefault(key, [0.0] * len(_BOUNDS))
    for i, b in enumerate(_BOUNDS):
        if math.isclose(b, bound) or (math.isinf(b) and math.isinf(bound)):
            row[i] += value
            return


def current_reading() -> MetricsReading:
    """The totals now, reduced (one pass over every process's samples)."""
    values: dict[str, float] = {}
    buckets: dict[str, list[float]] = {}
    for name, labels, value in metrics.samples():
        if name == "mangaassist_http_request_duration_seconds_bucket":
            _add_bucket(buckets, "http", labels["le"], value)
        elif name == "mangaassist_http_request_duration_seconds_count":
            _add(values, "http:requests", value)
            _add(values, f"http:status:{labels['status'][:1]}xx", value)
        elif name == "mangaassist_dynamodb_request_duration_seconds_bucket":
            _add_bucket(buckets, f"dynamodb:{labels['route']}", labels["le"], value)
        elif name == "mangaassist_dynamodb_requests_total":
            _add(values, f"dynamodb:calls:{labels['route']}", value)
            if labels["outcome"] not in ("ok", "condition_failed"):
                _add(values, f"dynamodb:errors:{labels['route']}", value)
        elif name == "mangaassist_redis_request_duration_seconds_bucket":
            _add_bucket(buckets, "redis", labels["le"], value)
        elif name == "mangaassist_redis_request_duration_seconds_count":
            _add(values, "redis:calls", value)
        elif name == "mangaassist_redis_errors_total":
            _add(values, "redis:errors", value)
        elif name == "mangaassist_redis_degraded_events_total":
            _add(values, f"degraded:{labels['operation']}", value)
        elif name == "mangaassist_task_enqueue_failures_total":
            _add(values, f"enqueue_failures:{labels['task']}", value)
        elif name == "mangaassist_turn_appends_total":
            _add(values, f"appends:{labels['outcome']}", value)
        elif name == "mangaassist_context_loads_total":
            _add(values, f"context:{labels['source']}", value)
        elif name == "mangaassist_rate_limit_denials_total":
            _add(values, f"denials:{labels['limit']}", value)
        elif name == "mangaassist_summary_task_duration_seconds_count":
            _add(values, f"summaries:{labels['outcome']}", value)
        elif name == "mangaassist_webhook_deliveries_total":
            _add(values, f"webhooks:{labels['webhook']}:{labels['outcome']}", value)
        elif name == "mangaassist_model_tokens_total":  # the overview's by-model panel
            _add(values, f"model_tokens:{labels['direction']}:{labels['model']}", value)
        elif name == "mangaassist_model_latency_seconds_bucket":
            _add_bucket(buckets, f"model_latency:{labels['model']}", labels["le"], value)
        elif name == "mangaassist_dax_breaker_open":
            _add(values, "dax:breaker_open", value)
    return MetricsReading(at=time.time(), values=values, buckets=buckets, mode=metrics.aggregate_mode())


# Gauges are levels, not totals: a window shows the newer reading's level.
_LEVELS = ("dax:breaker_open",)


def window(newer: MetricsReading, older: MetricsReading | None) -> MetricsReading:
    """What happened between ``older`` and ``newer`` (``older`` None: everything since start)."""
    if older is None:
        return newer
    values = {k: (v if k in _LEVELS else max(0.0, v - older.value(k))) for k, v in newer.values.items()}
    buckets = {}
    for key, row in newer.buckets.items():
        before = older.buckets.get(key, [0.0] * len(row))
        buckets[key] = [max(0.0, a - b) for a, b in zip(row, before, strict=True)]
    return MetricsReading(at=newer.at, values=values, buckets=buckets, mode=newer.mode)


def quantile_seconds(cumulative: list[float] | None, q: float) -> float | None:
    """The q-quantile of a cumulative bucket row, interpolated linearly inside its bucket as
    Prometheus' ``histogram_quantile`` does; None without observations. A quantile in the +Inf
    bucket is reported as the highest finite bound (the histogram cannot say more)."""
    if not cumulative or cumulative[-1] <= 0:
        return None
    rank = q * cumulative[-1]
    previous_bound, previous_count = 0.0, 0.0
    for bound, count in zip(_BOUNDS, cumulative, strict=True):
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (rank - previous_count) / (count - previous_count)
        previous_bound, previous_count = bound, count
    return previous_bound


def ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None
