"""Where a console panel was read from and how long that took, so staff can tell a cached
answer from a fresh one; and the console's own Redis read latencies for the overview.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from .. import dynamo

SOURCE_REDIS = "Redis"
SOURCE_DAX = "DAX"
SOURCE_DYNAMODB = "DynamoDB"
SOURCE_DYNAMODB_CONSISTENT = "DynamoDB (ConsistentRead)"


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


class Timer:
    def __init__(self, source: str):
        self.source = source

    def __enter__(self) -> Timer:
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.elapsed_ms = elapsed_ms(self.started)
        if self.source == SOURCE_REDIS:
            _redis_observe(self.elapsed_ms)

    @property
    def provenance(self) -> Provenance:
        return Provenance(source=self.source, elapsed_ms=self.elapsed_ms)


def store_read() -> Timer:
    return Timer(_route_label(consistent=False))


def consistent_read() -> Timer:
    return Timer(SOURCE_DYNAMODB_CONSISTENT)


def redis_read() -> Timer:
    return Timer(SOURCE_REDIS)


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


# The console's own Redis reads, for the overview's latency table (dynamo.path_stats covers the
# DynamoDB/DAX routes; nothing else measures Redis reads in this process).
_redis_lock = threading.Lock()
_redis_stats = dynamo.PathStats()


def _redis_observe(elapsed: float) -> None:
    with _redis_lock:
        _redis_stats.observe(elapsed)


def redis_latency() -> tuple[int, float | None, float | None]:
    """(calls, p50 ms, p95 ms) of this process's console Redis reads."""
    with _redis_lock:
        return _redis_stats.calls, _redis_stats.quantile_ms(0.5), _redis_stats.quantile_ms(0.95)
