"""The local DAX cluster's nodes as their own stats endpoints describe them (docs/dax-protocol.md
§Cluster): read by the overview and the infrastructure page (one row per node), and by the alert
sweep, which stores each node's cumulative cache counters (``selectors.dax_cache``).

Production DAX has no such endpoint: CloudWatch's DAX metrics are the source there.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class DaxNodeRow:
    """One DAX node as its own stats endpoint describes it (docs/dax-protocol.md §Cluster)."""

    node_id: int
    address: str
    az: str | None
    role: str  # leader / replica, or "unreachable" when its stats endpoint did not answer
    alive: bool  # in the membership view of the node we asked first
    item_hits: int | None = None
    item_misses: int | None = None
    query_hits: int | None = None
    query_misses: int | None = None
    requests: int | None = None
    forwarded_writes: int | None = None
    replication_lag_ms: float | None = None  # the last batch the leader sent this replica
    replication_max_lag_ms: float | None = None


@dataclass(frozen=True)
class DaxClusterView:
    nodes: list[DaxNodeRow]
    leader_node_id: int | None
    name: str | None


def _fetch_json(url: str, timeout: float) -> dict | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - URL from settings
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def dax_cluster(*, url: str | None = None, timeout: float = 0.5) -> DaxClusterView | None:
    """Every node of the local DAX cluster with its own counters: the node at ``DAX_STATS_URL``
    names the members (``GET /cluster``), each member's stats endpoint is read in parallel. None
    when unset or the first node does not answer (the overview says "n/a", never a made-up
    zero). Production DAX has no such endpoint: CloudWatch's per-node DAX metrics are the source
    there (README "Running in production")."""
    url = url if url is not None else settings.DAX_STATS_URL
    if not url:
        return None
    base = url.rsplit("/stats", 1)[0] if url.endswith("/stats") else url.rstrip("/")
    view = _fetch_json(f"{base}/cluster", timeout)
    if view is None:
        return None
    members = [m for m in view.get("Members", []) if isinstance(m, dict)]
    host = base.split("//", 1)[-1].rsplit(":", 1)[0]

    def one(member: dict) -> DaxNodeRow:
        stats = _fetch_json(f"http://{host}:{member['StatsPort']}/stats", timeout) if member.get("StatsPort") else None
        cluster = (stats or {}).get("Cluster") or {}
        replication = cluster.get("Replication") or {}
        return DaxNodeRow(
            node_id=member.get("NodeId"), address=f"{member.get('Address')}:{member.get('Port')}",
            az=member.get("AvailabilityZone"),
            role=(cluster.get("Role") or ("leader" if stats else None) or "unreachable"),
            alive=bool(member.get("Alive")),
            item_hits=(stats or {}).get("ItemCacheHits"), item_misses=(stats or {}).get("ItemCacheMisses"),
            query_hits=(stats or {}).get("QueryCacheHits"), query_misses=(stats or {}).get("QueryCacheMisses"),
            requests=(stats or {}).get("TotalRequestCount"), forwarded_writes=cluster.get("ForwardedWrites"),
            replication_lag_ms=replication.get("LastLagMs"), replication_max_lag_ms=replication.get("MaxLagMs"),
        )

    with ThreadPoolExecutor(max_workers=max(1, len(members))) as pool:
        rows = list(pool.map(one, members))
    return DaxClusterView(nodes=sorted(rows, key=lambda r: r.node_id or 0), leader_node_id=view.get("LeaderNodeId"),
                          name=view.get("Name"))
