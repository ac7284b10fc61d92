"""Command-line options of the node, shared by ``python -m daxlocal`` and ``run_dax_node``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

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


def config_from(options) -> NodeConfig:
    get = options.get if isinstance(options, dict) else lambda k: getattr(options, k)
    for name in ("record_ttl_millis", "query_ttl_millis", "tx_refresh_delay_ms"):
        if get(name) < 0:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 0")
    return NodeConfig(
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
    try:
        config = config_from(options)
    except ValueError as exc:
        parser.error(str(exc))
    run(config, options.log_level)
