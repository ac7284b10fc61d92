"""DAX's item and query cache hit ratios over a window, with the lookups behind each ratio (a
rule needs a minimum number of them before a ratio means anything).

Two sources, chosen by the settings:

- ``DAX_STATS_URL`` set (the local DAX node, or a local cluster): every node's ``GET /stats``
  holds cumulative ``ItemCacheHits``/``ItemCacheMisses``/``QueryCacheHits``/``QueryCacheMisses``
  (docs/dax-protocol.md). The alert sweep stores them per node in each metric sample
  (:func:`dax_node_counters`); a window is the difference between two stored samples.
- ``DAX_STATS_URL`` unset and ``DAX_CLUSTER_NAME`` set (production DAX, which has no such
  endpoint): CloudWatch's ``AWS/DAX`` metrics of the cluster (dimension ``ClusterId``), the Sum of
  each per minute over the window, read with one ``GetMetricData``.

The node reads are ``selectors.dax_nodes``' (the overview's and the infrastructure page's too).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from ..clock import utcnow
from ..models import MetricSample
from .alerts import DAX, sample_pair
from .dax_nodes import dax_cluster

SOURCE_LOCAL = "local"
SOURCE_CLOUDWATCH = "cloudwatch"
COUNTERS = ("ItemCacheHits", "ItemCacheMisses", "QueryCacheHits", "QueryCacheMisses")
CLOUDWATCH_NAMESPACE = "AWS/DAX"
CLOUDWATCH_PERIOD = 60  # DAX publishes one-minute metrics
# GetMetricData query ids: lower-case first letter, letters, digits and underscores only.
_QUERY_IDS = {"ItemCacheHits": "item_hits", "ItemCacheMisses": "item_misses",
              "QueryCacheHits": "query_hits", "QueryCacheMisses": "query_misses"}


class DaxStatsUnavailable(Exception):
    """The source could not be read (a node's stats endpoint, or CloudWatch): unknown, not zero."""


@dataclass(frozen=True)
class DaxHitRatios:
    source: str  # SOURCE_LOCAL or SOURCE_CLOUDWATCH
    item_hits: int
    item_misses: int
    query_hits: int
    query_misses: int
    seconds: float  # the window the counts cover
    short: bool = False  # no sample was as old as the window asked (local source only)

    @property
    def item_requests(self) -> int:
        return self.item_hits + self.item_misses

    @property
    def query_requests(self) -> int:
        return self.query_hits + self.query_misses

    @property
    def item_hit_ratio(self) -> float | None:
        return self.item_hits / self.item_requests if self.item_requests else None

    @property
    def query_hit_ratio(self) -> float | None:
        return self.query_hits / self.query_requests if self.query_requests else None


def dax_source() -> str | None:
    """Where the hit ratios come from, or None: neither a stats URL nor a cluster name is set."""
    if settings.DAX_STATS_URL:
        return SOURCE_LOCAL
    if settings.DAX_CLUSTER_NAME:
        return SOURCE_CLOUDWATCH
    return None


# --- the local nodes' stats endpoints -------------------------------------------------------------

_COUNTER_FIELDS = {"ItemCacheHits": "item_hits", "ItemCacheMisses": "item_misses",
                   "QueryCacheHits": "query_hits", "QueryCacheMisses": "query_misses"}


def dax_node_counters(*, url: str | None = None, timeout: float = 0.5) -> dict | None:
    """The cumulative cache counters of every node of the local cluster (``dax_nodes.dax_cluster``),
    as stored in a metric sample: ``{"nodes": {"<node id>@<address>": {"ItemCacheHits": n, ...}}}``
    — keyed by id and address, so a node replaced at another address starts counting afresh. A
    member whose stats did not answer is left out. None when unset or no node answers."""
    cluster = dax_cluster(url=url, timeout=timeout)
    if cluster is None:
        return None
    nodes = {}
    for node in cluster.nodes:
        counters = {name: getattr(node, field) for name, field in _COUNTER_FIELDS.items()}
        if all(isinstance(v, int) for v in counters.values()):
            nodes[f"{node.node_id}@{node.address}"] = counters
    return {"nodes": nodes} if nodes else None


def dax_counters_delta(newer: dict, older: dict) -> dict[str, int]:
    """What the nodes counted between two stored counter sets, summed over the nodes in both. A
    node whose counter went down restarted (its caches and counters start empty): what it
    counted since is its newer value, as Prometheus' ``increase()`` reads a reset."""
    total = dict.fromkeys(COUNTERS, 0)
    old_nodes = older.get("nodes") or {}
    for name, counters in (newer.get("nodes") or {}).items():
        before = old_nodes.get(name)
        if before is None:
            continue
        for c in COUNTERS:
            now_value, then_value = int(counters.get(c, 0)), int(before.get(c, 0))
            total[c] += now_value - then_value if now_value >= then_value else now_value
    return total


def _local_ratios(*, seconds: float, now: datetime) -> DaxHitRatios | None:
    newest = MetricSample.objects.filter(taken_at__lte=now).order_by("-taken_at").first()
    if newest is not None and newest.data.get(DAX) is None:
        # The newest sample could not read the nodes: the last good one would be stale.
        raise DaxStatsUnavailable(f"the DAX stats endpoint ({settings.DAX_STATS_URL}) did not answer")
    pair = sample_pair(seconds=seconds, now=now, key=DAX)
    if pair is None or pair.older is None:
        return None
    counts = dax_counters_delta(pair.newer.data[DAX], pair.older.data[DAX])
    return DaxHitRatios(source=SOURCE_LOCAL, item_hits=counts["ItemCacheHits"], item_misses=counts["ItemCacheMisses"],
                        query_hits=counts["QueryCacheHits"], query_misses=counts["QueryCacheMisses"],
                        seconds=pair.seconds or 0.0, short=pair.short)


# --- CloudWatch (production) ----------------------------------------------------------------------

_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


def cloudwatch_client():
    """The process's CloudWatch client for ``AWS_REGION`` (built once: building one loads the
    service model, tens of milliseconds). Short timeouts and two attempts at most: the sweep runs
    every minute and rather says "unknown" than waits."""
    region = settings.AWS_REGION
    with _clients_lock:
        client = _clients.get(region)
        if client is None:
            config = Config(connect_timeout=2, read_timeout=5, retries={"total_max_attempts": 2, "mode": "standard"})
            client = boto3.session.Session().client("cloudwatch", region_name=region, config=config)
            _clients[region] = client
        return client


def cloudwatch_queries(cluster: str) -> list[dict]:
    """One ``MetricDataQuery`` per counter: its Sum per minute, for the whole cluster."""
    return [
        {"Id": _QUERY_IDS[name], "ReturnData": True,
         "MetricStat": {"Metric": {"Namespace": CLOUDWATCH_NAMESPACE, "MetricName": name,
                                   "Dimensions": [{"Name": "ClusterId", "Value": cluster}]},
                        "Period": CLOUDWATCH_PERIOD, "Stat": "Sum"}}
        for name in COUNTERS
    ]


def cloudwatch_window(*, seconds: float, now: datetime) -> tuple[datetime, datetime]:
    """Whole minutes: the minute still running is not complete in CloudWatch yet."""
    end = now.replace(second=0, microsecond=0)
    return end - timedelta(seconds=seconds), end


def dax_cloudwatch_ratios(*, cluster: str, start: datetime, end: datetime, client=None) -> DaxHitRatios | None:
    """The cluster's hits and misses between ``start`` and ``end`` from CloudWatch; None when
    CloudWatch has no datapoint in the window (no traffic, or a cluster name that matches
    nothing). Raises DaxStatsUnavailable when CloudWatch cannot be read."""
    client = client or cloudwatch_client()
    totals = dict.fromkeys(COUNTERS, 0.0)
    by_id = {query_id: name for name, query_id in _QUERY_IDS.items()}
    seen = False
    request = {"MetricDataQueries": cloudwatch_queries(cluster), "StartTime": start, "EndTime": end,
               "ScanBy": "TimestampDescending"}
    try:
        while True:
            response = client.get_metric_data(**request)
            for result in response.get("MetricDataResults", []):
                name = by_id.get(result.get("Id"))
                values = result.get("Values") or []
                if name and values:
                    totals[name] += sum(values)
                    seen = True
            token = response.get("NextToken")
            if not token:
                break
            request["NextToken"] = token
    except (BotoCoreError, ClientError) as exc:
        raise DaxStatsUnavailable(f"CloudWatch GetMetricData failed: {type(exc).__name__}: {exc}"[:300]) from exc
    if not seen:
        return None
    return DaxHitRatios(source=SOURCE_CLOUDWATCH, item_hits=int(totals["ItemCacheHits"]),
                        item_misses=int(totals["ItemCacheMisses"]), query_hits=int(totals["QueryCacheHits"]),
                        query_misses=int(totals["QueryCacheMisses"]), seconds=(end - start).total_seconds())


# --- either -----------------------------------------------------------------------------------------

def dax_hit_ratios(*, seconds: float, now: datetime | None = None) -> DaxHitRatios | None:
    """The hit ratios of the window of ``seconds`` ending at ``now``, from the configured source.
    None: not configured, or no data for the window yet (a single stored sample; CloudWatch with
    no datapoint). Raises DaxStatsUnavailable when the source cannot be read."""
    now = now or utcnow()
    source = dax_source()
    if source == SOURCE_LOCAL:
        return _local_ratios(seconds=seconds, now=now)
    if source == SOURCE_CLOUDWATCH:
        start, end = cloudwatch_window(seconds=seconds, now=now)
        return dax_cloudwatch_ratios(cluster=settings.DAX_CLUSTER_NAME, start=start, end=end)
    return None
