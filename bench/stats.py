"""Small statistics and display helpers shared by the scenarios."""

from __future__ import annotations

import math
import sys
import time


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100) of an already sorted list."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * q / 100.0
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def summarize(samples: list[float]) -> dict:
    """n, mean, median, p95, p99, min, max of raw samples (the JSON keeps this, not the samples)."""
    values = sorted(samples)
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "mean": round(sum(values) / len(values), 4),
        "p50": round(percentile(values, 50), 4),
        "p95": round(percentile(values, 95), 4),
        "p99": round(percentile(values, 99), 4),
        "min": round(values[0], 4),
        "max": round(values[-1], 4),
    }


def slices_summary(rates: list[float], latencies: list[float], errors: int) -> dict:
    """One variant of an interleaved closed-loop comparison: its slices' median req/s (the figure
    compared; a median resists a slice that a neighbour's burst slowed), every slice's req/s, the
    latency of all its requests, and its non-2xx answers."""
    ordered = sorted(rates)
    return {
        "req_per_s_median": round(ordered[len(ordered) // 2], 1) if ordered else None,
        "req_per_s_slices": [round(r, 1) for r in rates],
        "latency_ms": summarize(latencies),
        "errors": errors,
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)


def fmt(value, unit: str = "", digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        text = f"{value:,.{digits}f}"
    else:
        text = f"{value:,}" if isinstance(value, int) else str(value)
    return f"{text}{unit}"


def lat(summary: dict, unit: str = " ms") -> str:
    """'p50 / p95 / p99' of a latency summary."""
    if not summary or not summary.get("n"):
        return "–"
    return f"{summary['p50']:.2f} / {summary['p95']:.2f} / {summary['p99']:.2f}{unit}"


class Progress:
    """One self-overwriting status line on stderr (throttled), e.g. '[load] 1,200/10,000 sessions'."""

    def __init__(self, label: str, total: int | None = None, unit: str = "") -> None:
        self.label, self.total, self.unit = label, total, unit
        self.started = time.monotonic()
        self._last = 0.0
        self.tty = sys.stderr.isatty()

    def update(self, done: int, extra: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        total = f"/{self.total:,}" if self.total else ""
        eta = ""
        if self.total and rate > 0 and done < self.total:
            eta = f", ~{(self.total - done) / rate:,.0f}s left"
        line = f"  [{self.label}] {done:,}{total} {self.unit} ({rate:,.0f}/s{eta}) {extra}"
        sys.stderr.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        sys.stderr.flush()

    def done(self, done: int, extra: str = "") -> None:
        self.update(done, extra, force=True)
        if self.tty:
            sys.stderr.write("\n")
        sys.stderr.flush()


def say(message: str) -> None:
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()
