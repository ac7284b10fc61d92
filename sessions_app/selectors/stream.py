"""The change feed as the overview and ``stream_consume --status`` show it: shards, leases,
checkpoints, lag, throughput, the last error, and what the feed counted fleet-wide."""

from __future__ import annotations

from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from ..models import CHANNELS
from ..realtime import FleetMinute, StreamProgress, activity_recent, fleet_stats, stream_progress
from ..streams.consumer import Shard, shards_describe, stream_arn_of
from ..streams.leases import Lease, LeaseTable

FLEET_FIELDS = ("turns", *(f"started:{c}" for c in CHANNELS), *(f"closed:{c}" for c in CHANNELS), "summaries", "expired")


@dataclass
class StreamStatus:
    stream_arn: str | None  # None: the table has no stream
    shards: list[Shard] = field(default_factory=list)
    leases: list[Lease] = field(default_factory=list)
    progress: StreamProgress | None = None  # None: Redis down
    error: str | None = None  # why the stream or its leases could not be read

    @property
    def leases_held(self) -> list[Lease]:
        return [lease for lease in self.leases if lease.held() and not lease.finished]

    @property
    def consumers(self) -> list[str]:
        return sorted({lease.owner for lease in self.leases_held if lease.owner})

    @property
    def lag_alert(self) -> bool:
        """The newest records waited longer than ``STREAM_LAG_ALERT_SECONDS``."""
        lag = self.progress.lag_max_ms if self.progress else None
        return lag is not None and lag / 1000 > settings.STREAM_LAG_ALERT_SECONDS


def stream_status(*, seconds: int = 60, shards: bool = True) -> StreamStatus:
    """Everything about the change feed; never raises for an unreachable store (says so in
    ``error``). ``shards``: also list the stream's shards (one DescribeStream per 100)."""
    progress = stream_progress(seconds=seconds)
    try:
        arn = stream_arn_of()
        if arn is None:
            return StreamStatus(stream_arn=None, progress=progress)
        status = StreamStatus(stream_arn=arn, progress=progress)
        status.leases = sorted(LeaseTable(stream_arn=arn).list(), key=lambda lease: lease.shard_id)
        if shards:
            status.shards = shards_describe(arn)
    except (ClientError, BotoCoreError) as exc:
        return StreamStatus(stream_arn=None, progress=progress, error=f"{type(exc).__name__}: {exc}")
    return status


@dataclass(frozen=True)
class FleetSummary:
    minutes: int
    per_minute: list[FleetMinute]  # newest first

    def total(self, name: str) -> int:
        return sum(m.counts.get(name, 0) for m in self.per_minute)

    def total_prefixed(self, prefix: str) -> int:
        return sum(v for m in self.per_minute for k, v in m.counts.items() if k.startswith(prefix))

    def by_channel(self, what: str) -> dict[str, int]:
        """``what`` is ``started`` or ``closed``."""
        return {c: self.total(f"{what}:{c}") for c in CHANNELS}


def fleet_summary(*, minutes: int = 15) -> FleetSummary | None:
    """The fleet-wide counts of the last ``minutes`` minutes. Redis down: None (unknown)."""
    rows = fleet_stats(fields=FLEET_FIELDS, minutes=minutes)
    return FleetSummary(minutes=minutes, per_minute=rows) if rows is not None else None


def activity_feed(*, limit: int = 30) -> list[dict] | None:
    """The newest change events, newest first. Redis down: None (unknown)."""
    return activity_recent(limit=limit)
