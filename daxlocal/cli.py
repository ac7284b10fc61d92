"""Command-line options of the node, shared by ``python -m daxlocal`` and ``run_dax_node``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from .cluster import ClusterConfig
from .server import DaxNode, NodeConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = NodeConfig()
    parser.add_argument("--port", type=int, default=d.port, help="DAX protocol port (default %(default)s)")
    parser.add_argument("--host", default=d.host, help="address to bind (default %(default)s: loopback only)")
    parser.add_argument("--advertise-host", default=None,
                        help="IPv4 address clients are told to connect to (default: the bind address, "
                             "or 127.0.0.1 when binding 0.0.0.0)")
    parser.add_argument("--dynamodb-endpoint", default=os.environ.get("DYNAMODB_ENDPOINT") or None,
                        help="DynamoDB endpoint URL (default: $DYNAMODB_ENDPOINT, else AWS's regional endpoint)")
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                        or d.region, help="AWS region for DynamoDB (default %(default)s)")
    parser.add_argument("--record-ttl-millis", type=int, default=d.record_ttl_millis,
                        help="item cache TTL, DAX's record-ttl-millis; 0 = never expire (default %(default)s)")
    parser.add_argument("--query-ttl-millis", type=int, default=d.query_ttl_millis,
                        help="query cache TTL, DAX's query-ttl-millis; 0 = do not cache (default %(default)s)")
    parser.add_argument("--item-cache-bytes", type=int, default=d.item_cache_bytes,
                        help="LRU bound of the item cache in estimated bytes (default %(default)s)")
    parser.add_argument("--query-cache-bytes", type=int, default=d.query_cache_bytes,
                        help="LRU bound of the query cache in estimated bytes (default %(default)s)")
    parser.add_argument("--tx-refresh-delay-ms", type=int, default=d.tx_refresh_delay_ms,
                        help="delay before the item-cache refresh that follows a TransactWriteItems; 0 = refresh "
                             "before replying, >0 = refresh in the background after this delay, like DAX, so "
                             "reads right after a transaction can see the old items (default %(default)s)")
    parser.add_argument("--registry-file", default=None,
                        help="JSON-lines file persisting the attribute-list registry, so clients that outlive a "
                             "node restart keep working (default: in memory; ids are content-derived either "
                             "way, so an old id is never given a new meaning)")
    parser.add_argument("--stats-port", type=int, default=None,
                        help="HTTP port for GET /stats and POST /flush (default: disabled)")
    parser.add_argument("--stats-host", default=d.stats_host, help="address for the stats port (default %(default)s)")
    parser.add_argument("--log-level", default="INFO", help="logging level (default %(default)s)")
    c = ClusterConfig(name="")
    group = parser.add_argument_group("cluster (docs/dax-protocol.md §Cluster)")
    group.add_argument("--cluster-size", type=int, default=1,
                       help="run this many nodes as one cluster: this process supervises them (the first on "
                            "--port, the others on free ports), prints their addresses and restarts any that "
                            "dies (default %(default)s: one node, no cluster)")
    group.add_argument("--cluster-name", default=None,
                       help="join (or form) the named cluster: nodes started separately with the same name and "
                            "--cluster-table are one cluster (default: no cluster; with --cluster-size, local-<port>)")
    group.add_argument("--cluster-table", default=c.table,
                       help="DynamoDB table holding the cluster's membership and leader lease, created if missing "
                            "(default %(default)s)")
    group.add_argument("--node-index", type=int, default=0,
                       help="this node's place in the cluster, unique within it: endpoint node id = index + 1, "
                            "AZ local-1a, -1b, ... by index (default %(default)s)")
    group.add_argument("--availability-zone", default=None, help="the AZ this node reports (default: by index)")
    group.add_argument("--peer-port", type=int, default=0,
                       help="port for forwarded writes and replication between nodes (default: a free one)")
    group.add_argument("--replication-delay-ms", type=int, default=c.replication_delay_ms,
                       help="delay item-cache replication from the leader by this much (a slow link; default %(default)s)")
    group.add_argument("--heartbeat-ms", type=int, default=int(c.heartbeat_seconds * 1000),
                       help="membership heartbeat and lease renewal interval (default %(default)s)")
    group.add_argument("--lease-ms", type=int, default=int(c.lease_seconds * 1000),
                       help="a leader lease not renewed for this long is taken over (default %(default)s)")
    group.add_argument("--member-timeout-ms", type=int, default=int(c.member_timeout_seconds * 1000),
                       help="a member whose heartbeat has not moved for this long leaves the endpoints reply "
                            "(default %(default)s)")


def config_from(options) -> NodeConfig:
    get = options.get if isinstance(options, dict) else lambda k: getattr(options, k)
    for name in ("record_ttl_millis", "query_ttl_millis", "tx_refresh_delay_ms"):
        if get(name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
    cluster = None
    if get("cluster_name"):
        for name in ("heartbeat_ms", "lease_ms", "member_timeout_ms"):
            if get(name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be > 0")
        if get("replication_delay_ms") < 0:
            raise ValueError("--replication-delay-ms must be >= 0")
        if get("lease_ms") <= get("heartbeat_ms"):
            raise ValueError("--lease-ms must be longer than --heartbeat-ms")
        cluster = ClusterConfig(
            name=get("cluster_name"), table=get("cluster_table"), index=get("node_index"),
            availability_zone=get("availability_zone"), heartbeat_seconds=get("heartbeat_ms") / 1000,
            lease_seconds=get("lease_ms") / 1000, member_timeout_seconds=get("member_timeout_ms") / 1000,
            replication_delay_ms=get("replication_delay_ms"), peer_host=get("host") or "127.0.0.1",
            peer_port=get("peer_port"))
    return NodeConfig(
        cluster=cluster,
        dynamodb_endpoint=get("dynamodb_endpoint"), host=get("host"), port=get("port"),
        advertise_host=get("advertise_host"), region=get("region"),
        record_ttl_millis=get("record_ttl_millis"), query_ttl_millis=get("query_ttl_millis"),
        item_cache_bytes=get("item_cache_bytes"), query_cache_bytes=get("query_cache_bytes"),
        tx_refresh_delay_ms=get("tx_refresh_delay_ms"), registry_file=get("registry_file"),
        stats_host=get("stats_host"), stats_port=get("stats_port"),
    )


def run(config: NodeConfig, log_level: str = "INFO") -> None:
    """Serve until SIGTERM/SIGINT."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    node = DaxNode(config)
    stopped = threading.Event()

    def _stop(signum, frame) -> None:
        stopped.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    node.start()
    if node.stats_port is not None:
        logging.getLogger("daxlocal").info("stats on http://%s:%s/stats", config.stats_host, node.stats_port)
    stopped.wait()
    node.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m daxlocal", description="Local DAX node")
    add_arguments(parser)
    options = parser.parse_args(argv)
    if options.cluster_size < 1:
        parser.error("--cluster-size must be >= 1")
    if options.cluster_size > 1:
        from .supervise import supervise

        raise SystemExit(supervise(options, argv if argv is not None else sys.argv[1:]))
    try:
        config = config_from(options)
    except ValueError as exc:
        parser.error(str(exc))
    run(config, options.log_level)
