"""The TCP server: handshake, request framing, dispatch and replies.

See docs/dax-protocol.md §Connections and framing, §Authentication and §Methods.

One thread per connection: the client never pipelines, so each connection is a blocking
read-request / write-reply loop. Anything that cannot be parsed closes *that* connection only; a
request that parses but fails gets an error reply and the connection stays open.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import threading
import time
from dataclasses import dataclass
from typing import Callable

import botocore.session
from botocore.config import Config

from . import cbor
from .cache import LruTtlCache
from .cluster import WRITE_METHODS, Cluster, ClusterConfig, SharedAttributeLists
from .errors import THROTTLING_CODES, DaxError, internal, validation
from .handlers import Operations
from .registry import AttributeListRegistry
from .stats import REQUEST_COUNT_METRICS, Stats, StatsServer

log = logging.getLogger("daxlocal")

MAGIC = b"gJ7yne5G"
SERVICE = 1

# method id -> (name, positional argument count, Operations attribute, operation name for stats)
METHODS: dict[int, tuple[str, int, str | None, str | None]] = {
    1489122155: ("authorizeConnection", 5, None, None),
    455855874: ("endpoints", 0, "endpoints", None),
    -742646399: ("defineKeySchema", 1, "define_key_schema", None),
    670678385: ("defineAttributeList", 1, "define_attribute_list", None),
    -1230579644: ("defineAttributeListId", 1, "define_attribute_list_id", None),
    263244906: ("getItem", 3, "get_item", "GetItem"),
    -2106490455: ("putItem", 4, "put_item", "PutItem"),
    1425579023: ("updateItem", 3, "update_item", "UpdateItem"),
    1013539361: ("deleteItem", 3, "delete_item", "DeleteItem"),
    -931250863: ("query", 3, "query", "Query"),
    -1875390620: ("scan", 2, "scan", "Scan"),
    -697851100: ("batchGetItem", 2, "batch_get_item", "BatchGetItem"),
    116217951: ("batchWriteItem", 2, "batch_write_item", "BatchWriteItem"),
    1866287579: ("transactGetItems", 4, "transact_get_items", "TransactGetItems"),
    -1160037738: ("transactWriteItems", 9, "transact_write_items", "TransactWriteItems"),
    # Listed by the client's constants but never sent; answered with an error.
    785068263: ("methods", 0, None, None),
    -1016793520: ("services", 0, None, None),
}
AUTHORIZE = 1489122155


@dataclass
class NodeConfig:
    """Everything the CLI can set. TTLs follow DAX's parameter group (``record-ttl-millis``,
    ``query-ttl-millis``): item TTL 0 = never expire, query TTL 0 = do not cache."""

    dynamodb_endpoint: str | None = None
    host: str = "127.0.0.1"
    port: int = 8111
    advertise_host: str | None = None
    region: str = "us-east-1"
    record_ttl_millis: int = 300_000
    query_ttl_millis: int = 300_000
    item_cache_bytes: int = 64 * 1024 * 1024
    query_cache_bytes: int = 64 * 1024 * 1024
    tx_refresh_delay_ms: int = 0
    registry_file: str | None = None
    stats_host: str = "127.0.0.1"
    stats_port: int | None = None
    idle_timeout: float = 600.0
    # A cluster (docs/dax-protocol.md §Cluster): None = a single node that is its own leader.
    cluster: ClusterConfig | None = None


class _ConnectionClosed(cbor.Truncated):
    pass


class _SocketReader:
    """Exact-length reads from a socket, buffered."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.consumed_any = False

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise _ConnectionClosed("peer closed the connection")
            self.buf += chunk
        self.consumed_any = True
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data


class DaxNode:
    """A local DAX node: ``start()`` binds and serves in background threads; ``stop()`` ends it."""

    def __init__(self, config: NodeConfig, *, clock: Callable[[], float] = time.monotonic, dynamodb=None) -> None:
        self.config = config
        self.clock = clock
        self.stats = Stats()
        self.item_cache = LruTtlCache(max_bytes=config.item_cache_bytes, ttl_seconds=config.record_ttl_millis / 1000,
                                      clock=clock, ttl_zero_means_no_expiry=True)
        self.query_cache = LruTtlCache(max_bytes=config.query_cache_bytes, ttl_seconds=config.query_ttl_millis / 1000,
                                       clock=clock, ttl_zero_means_no_expiry=False)
        self.registry = AttributeListRegistry(config.registry_file)
        self.dynamodb = dynamodb or _dynamodb_client(config)
        self._server = _TcpServer((config.host, config.port), self)
        advertise = config.advertise_host or (config.host if config.host not in ("0.0.0.0", "") else "127.0.0.1")
        self.ops = Operations(
            dynamodb=self.dynamodb, registry=self.registry, item_cache=self.item_cache,
            query_cache=self.query_cache, stats=self.stats,
            advertise=(socket.inet_aton(socket.gethostbyname(advertise)), self.port),
            tx_refresh_delay=config.tx_refresh_delay_ms / 1000, clock=clock,
        )
        self._stats_server = None
        if config.stats_port is not None:
            self._stats_server = StatsServer(config.stats_host, config.stats_port,
                                             snapshot=self.snapshot, flush=self.flush, cluster=self.cluster_snapshot)
        self.cluster: Cluster | None = None
        if config.cluster is not None:
            self.cluster = Cluster(config.cluster, dynamodb=self.dynamodb, advertise_address=socket.gethostbyname(advertise),
                                   port=self.port, stats_port=self.stats_port, item_cache=self.item_cache,
                                   dispatch=self.dispatch, clock=clock)
            self.ops.on_cache_write = self.cluster.cache_written
            self.registry.shared = SharedAttributeLists(self.dynamodb, config.cluster.table)
            self.ops.cluster_endpoints = self.cluster.endpoints
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def stats_port(self) -> int | None:
        return self._stats_server.port if self._stats_server else None

    def start(self) -> DaxNode:
        if self.cluster is not None:
            self.cluster.start()  # joins before serving: the first endpoints reply lists this node
        # A short poll interval keeps stop() quick; the accept loop itself blocks in select().
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="dax-node", daemon=True)
        self._thread.start()
        if self._stats_server:
            self._stats_server.start()
        log.info("DAX node listening on %s:%s (DynamoDB %s)", self.config.host, self.port,
                 self.config.dynamodb_endpoint or "default AWS endpoint")
        return self

    def serve_forever(self) -> None:
        if self._stats_server:
            self._stats_server.start()
        log.info("DAX node listening on %s:%s (DynamoDB %s)", self.config.host, self.port,
                 self.config.dynamodb_endpoint or "default AWS endpoint")
        self._server.serve_forever()

    def stop(self) -> None:
        """Stop accepting, drop every open connection (clients see EOF), stop background work."""
        self._server.shutdown()
        self._server.server_close()
        self._server.close_connections()
        self.ops.cancel_refreshes()
        if self.cluster is not None:
            self.cluster.stop()
        if self._stats_server:
            self._stats_server.stop()

    def flush(self) -> None:
        self.item_cache.clear()
        self.query_cache.clear()

    def snapshot(self) -> dict:
        data = self.stats.snapshot()
        data.update({
            "EstimatedDbSize": self.item_cache.size_bytes + self.query_cache.size_bytes,
            "EvictedSize": self.item_cache.evicted_bytes + self.query_cache.evicted_bytes,
            "ItemCacheEntries": len(self.item_cache),
            "QueryCacheEntries": len(self.query_cache),
            "AttributeLists": len(self.registry),
            "Config": {
                "record-ttl-millis": self.config.record_ttl_millis,
                "query-ttl-millis": self.config.query_ttl_millis,
                "tx-refresh-delay-ms": self.config.tx_refresh_delay_ms,
            },
        })
        if self.cluster is not None:
            data["Cluster"] = self.cluster.snapshot()
        return data

    def cluster_snapshot(self) -> dict:
        """``GET /cluster``: this node's view of the cluster (a single node is its own leader)."""
        if self.cluster is not None:
            return self.cluster.snapshot()
        address, port = self.ops.advertise
        return {"Name": None, "NodeId": 1, "Role": "leader", "LeaderNodeId": 1, "Pid": os.getpid(),
                "Members": [{"NodeId": 1, "Address": socket.inet_ntoa(address), "Port": port,
                             "StatsPort": self.stats_port, "AvailabilityZone": "local-1a", "Alive": True,
                             "Role": "leader"}]}

    # ------------------------------------------------------------------ per connection

    def handle_connection(self, sock: socket.socket, peer) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(self.config.idle_timeout)
        reader = _SocketReader(sock)
        decoder = cbor.Decoder(reader.read)
        self.stats.connection_opened()
        try:
            self._handshake(reader, decoder)
            while True:
                reader.consumed_any = False
                try:
                    service = decoder.decode()
                except _ConnectionClosed:
                    if reader.consumed_any:
                        raise
                    return  # clean close between requests
                method_id = decoder.decode()
                if service != SERVICE or method_id not in METHODS or isinstance(method_id, bool):
                    raise cbor.CborError(f"unknown service/method {service!r}/{method_id!r}")
                name, arity, _, _ = METHODS[method_id]
                args = [decoder.decode() for _ in range(arity)]
                if method_id == AUTHORIZE:
                    log.debug("authorizeConnection from %s, access key %r", peer, args[0])
                    continue  # never answered: the client reads the next request's reply
                sock.sendall(self.dispatch(method_id, args))
        except (cbor.CborError, _ConnectionClosed) as exc:
            log.info("closing connection from %s: %s", peer, exc)
        except (OSError, socket.timeout) as exc:
            log.debug("connection from %s ended: %s", peer, exc)
        finally:
            self.stats.connection_closed()

    @staticmethod
    def _handshake(reader: _SocketReader, decoder: cbor.Decoder) -> None:
        if reader.read(len(MAGIC)) != MAGIC:
            raise cbor.CborError("bad magic")
        if decoder.decode() != 0:
            raise cbor.CborError("layering not supported")
        session = decoder.decode()
        if session is not None and not isinstance(session, bytes):
            raise cbor.CborError("session id must be bytes or null")
        if not isinstance(decoder.decode(), dict):
            raise cbor.CborError("client metadata must be a map")
        if decoder.decode() != 0:
            raise cbor.CborError("custom types not supported")

    def dispatch(self, method_id: int, args: list) -> bytes:
        """Run one request and return the full reply (success header + payload, or an error)."""
        name, _, attr, operation = METHODS[method_id]
        if operation:
            self.stats.incr(REQUEST_COUNT_METRICS[operation])
            self.stats.incr("TotalRequestCount")
        else:
            self.stats.control(name)
        try:
            if attr is None:
                raise validation(f"method {name} is not supported")
            if method_id in WRITE_METHODS and self.cluster is not None and not self.cluster.is_leader():
                # Only the leader writes (docs/dax-protocol.md §Cluster): relay its reply as it is.
                return self.cluster.forward(method_id, args)
            return b"\x80" + getattr(self.ops, attr)(*args)
        except DaxError as exc:
            error = exc
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            log.info("%s rejected: %r", name, exc)
            error = validation(f"malformed {name} request: {exc}")
        except Exception as exc:  # DynamoDB unreachable, or a bug: a fault, not a dropped connection
            log.exception("%s failed", name)
            error = internal(f"{type(exc).__name__}: {exc}")
        self.stats.incr("ErrorRequestCount")
        if error.is_fault:
            self.stats.incr("FaultRequestCount")
        if error.ddb_code in THROTTLING_CODES:
            self.stats.incr("ThrottledRequestCount")
        if error.ddb_code not in ("ConditionalCheckFailedException", "TransactionCanceledException"):
            self.stats.incr("FailedRequestCount")
        return error.encode()


class _TcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, node: DaxNode) -> None:
        self.node = node
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.node.handle_connection(self.request, self.client_address)  # type: ignore[attr-defined]


def _dynamodb_client(config: NodeConfig):
    """The node's botocore client. Its parameter validation is off: the node is a server, so
    DynamoDB judges a request (with its own ValidationException), not botocore's client-side checks,
    whose errors would otherwise surface as node faults (e.g. a negative Segment sent on the wire)."""
    session = botocore.session.get_session()
    return session.create_client(
        "dynamodb",
        region_name=config.region,
        endpoint_url=config.dynamodb_endpoint,
        config=Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=64,
                      connect_timeout=5, read_timeout=30, parameter_validation=False),
    )
