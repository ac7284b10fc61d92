"""Where a console panel was read from and how long that took, so staff can tell a cached
answer from a fresh one.

Observed, not predicted: a DynamoDB read's provenance is the route its calls actually took, as
``dynamo.routes_recorded`` saw them (for several calls, the least-cached one), never what the
settings or the breaker suggest it would take.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .. import dynamo

ROUTE_REDIS = "redis"
# How each route reads to staff.
ROUTE_LABELS = {
    dynamo.ROUTE_DAX: "DAX",
    dynamo.ROUTE_DYNAMODB: "DynamoDB",
    dynamo.ROUTE_CONSISTENT: "DynamoDB (ConsistentRead)",
    dynamo.ROUTE_FALLBACK: "DynamoDB (DAX fallback)",
    ROUTE_REDIS: "Redis",
}


@dataclass(frozen=True)
class Provenance:
    route: str | None  # a dynamo.ROUTE_* name or ROUTE_REDIS; None: nothing needed reading
    elapsed_ms: float

    @property
    def source(self) -> str | None:
        return ROUTE_LABELS[self.route] if self.route else None


def elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


class store_read:  # noqa: N801 - used as a statement: ``with store_read() as read:``
    """Time a block of DynamoDB reads and record the routes they took; ``.provenance`` after it."""

    def __enter__(self) -> store_read:
        self._routes = dynamo.routes_recorded()
        self._record = self._routes.__enter__()
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        elapsed = elapsed_ms(self._started)
        self._routes.__exit__(*exc)
        self.provenance = Provenance(route=self._record.label, elapsed_ms=elapsed)


class redis_read:  # noqa: N801 - used as a statement: ``with redis_read() as read:``
    """Time a block of Redis reads; ``.provenance`` after it. (Each Redis call in the block is
    counted and timed by its call site in ``mangaassist_redis_request_duration_seconds``.)"""

    def __enter__(self) -> redis_read:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.provenance = Provenance(route=ROUTE_REDIS, elapsed_ms=elapsed_ms(self._started))
