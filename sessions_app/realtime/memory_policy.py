"""Redis's eviction policy (``maxmemory-policy``), compared with the one the app is built for.

``settings.REDIS_MAXMEMORY_POLICY`` (default ``volatile-lru``) is the documented choice. Why, for
this key mix: every key of ours has a TTL and is a cache or ephemeral state (keys.py), so when
Redis is full evicting one of them costs latency or an approximation, never data, and the least
recently used go first — old ``stats:`` buckets, idle sessions' cached contexts, stale presence —
while the keys in use right now (a rate window being counted, a lock just taken, a live
connection's mapping) are the most recently used and the last to go. Among keys with a TTL
``volatile-lru`` evicts exactly what ``allkeys-lru`` would, and it never evicts a key without
one: a Celery broker sharing the server (README: database 1) keeps its queued tasks, and when
nothing evictable is left Redis refuses writes (OOM), which this package handles like an outage.
``noeviction`` would make a full Redis refuse every write (rate limits fail open, locks are
skipped, the connection map answers 503); ``volatile-ttl`` would evict the shortest-lived keys —
locks and rate windows — first; the LFU policies start a new key with a low count, so a lock
taken a moment ago could go before a cached context read all day.

What an eviction can still cost where DynamoDB's conditions don't already protect (the write
lock and the summary lock only save retries and duplicate work, locks.py): a customer's rate
window (a few extra turns), a live connection's mapping (pushes stop until it reconnects), a
session's ``fleet:seen`` (a redelivered record counted twice in a graph).

Read with ``CONFIG GET`` and, where that is refused (ElastiCache renames CONFIG; an ACL may deny
it), ``INFO memory``; on a cluster from every node. With ``maxmemory`` 0 (no limit, a stock
redis-server) the policy never applies and is not compared.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import redis
from django.conf import settings
from redis import exceptions as rx
from redis.backoff import NoBackoff
from redis.retry import Retry

from .client import cluster_client_build, redis_cluster_enabled, redis_error_is_unavailability

logger = logging.getLogger("sessions_app.realtime")

# `REDIS_MAXMEMORY_POLICY=any`: no comparison.
ANY_POLICY = "any"


@dataclass(frozen=True, slots=True)
class NodeMemoryPolicy:
    node: str  # host:port
    policy: str | None  # None: neither CONFIG GET nor INFO told
    maxmemory: int | None  # bytes; 0: no limit
    source: str  # "config" or "info"

    @property
    def applies(self) -> bool:
        """Whether the policy can ever act: there is a memory limit (or we could not tell)."""
        return self.maxmemory != 0


def node_memory_policy(client: redis.Redis, *, node: str) -> NodeMemoryPolicy:
    """One node's policy and limit. Redis errors propagate (the caller decides)."""
    try:
        values = client.config_get("maxmemory*")
        return NodeMemoryPolicy(node=node, policy=values.get("maxmemory-policy"),
                                maxmemory=_int(values.get("maxmemory")), source="config")
    except rx.ResponseError as error:
        if redis_error_is_unavailability(error):
            raise
    info = client.info("memory")
    return NodeMemoryPolicy(node=node, policy=info.get("maxmemory_policy"), maxmemory=_int(info.get("maxmemory")),
                            source="info")


def _int(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def memory_policies_read(*, timeout: float = 1.0) -> list[NodeMemoryPolicy]:
    """Every node's policy, through a client of its own (never the shared pool: this runs at
    start-up, maybe before a fork), closed afterwards. Redis errors propagate."""
    cache = settings.CACHES["default"]
    url = cache["LOCATION"]
    if redis_cluster_enabled():
        cluster = cluster_client_build(url, connect_timeout=timeout, timeout=timeout, max_connections=4)
        try:
            return [node_memory_policy(cluster.get_redis_connection(node), node=node.name)
                    for node in sorted(cluster.get_nodes(), key=lambda n: n.name)]
        finally:
            cluster.close()
    client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout,
                                  retry=Retry(NoBackoff(), 0))
    try:
        kwargs = client.connection_pool.connection_kwargs
        return [node_memory_policy(client, node=f"{kwargs.get('host')}:{kwargs.get('port')}")]
    finally:
        client.close()


def memory_policy_mismatches(*, expected: str | None = None,
                             timeout: float = 1.0) -> list[NodeMemoryPolicy] | None:
    """The nodes whose policy differs from ``expected`` (``REDIS_MAXMEMORY_POLICY``) while a memory
    limit makes it matter; [] when all agree or nothing is compared (``any``); None when Redis
    could not be reached or read (nothing can be said: never an error at start-up)."""
    expected = settings.REDIS_MAXMEMORY_POLICY if expected is None else expected
    if expected == ANY_POLICY:
        return []
    try:
        readings = memory_policies_read(timeout=timeout)
    except (rx.RedisError, rx.RedisClusterException, OSError) as error:
        logger.debug("redis maxmemory-policy not read: %s: %s", type(error).__name__, error)
        return None
    return [r for r in readings if r.applies and r.policy is not None and r.policy != expected]


def memory_policy_problem(mismatches: list[NodeMemoryPolicy]) -> str:
    """One line naming the nodes and their policies."""
    seen = ", ".join(f"{r.node}: {r.policy}" for r in mismatches)
    return f"Redis maxmemory-policy is not {settings.REDIS_MAXMEMORY_POLICY} ({seen})"


def memory_policy_log() -> None:
    """Start-up: log a warning when the policy is not the documented one. Never raises."""
    try:
        mismatches = memory_policy_mismatches()
    except Exception:  # noqa: BLE001 - a start-up courtesy must never take the process down
        logger.debug("redis maxmemory-policy check failed", exc_info=True)
        return
    if mismatches:
        logger.warning("%s; set it in the Redis parameter group (README \"Redis: eviction\")",
                       memory_policy_problem(mismatches))
