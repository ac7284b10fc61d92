"""Counters named after DAX's CloudWatch metrics, and the small HTTP admin endpoint.

https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/dax-metrics-dimensions-dax.html

``GET /stats`` returns the counters (and cache gauges) as JSON, with the node's cluster view under
``Cluster`` in a cluster; ``GET /cluster`` returns that view alone (docs/dax-protocol.md §Cluster);
``POST /flush`` empties both caches.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

# Operation name -> its CloudWatch request-count metric.
REQUEST_COUNT_METRICS = {
    "GetItem": "GetItemRequestCount",
    "PutItem": "PutItemRequestCount",
    "UpdateItem": "UpdateItemRequestCount",
    "DeleteItem": "DeleteItemRequestCount",
    "Query": "QueryRequestCount",
    "Scan": "ScanRequestCount",
    "BatchGetItem": "BatchGetItemRequestCount",
    "BatchWriteItem": "BatchWriteItemRequestCount",
    "TransactGetItems": "TransactGetItemsCount",
    "TransactWriteItems": "TransactWriteItemsCount",
}

COUNTERS = (
    "ItemCacheHits", "ItemCacheMisses", "QueryCacheHits", "QueryCacheMisses", "ScanCacheHits", "ScanCacheMisses",
    *REQUEST_COUNT_METRICS.values(),
    "TotalRequestCount", "ErrorRequestCount", "FaultRequestCount", "FailedRequestCount", "ThrottledRequestCount",
)


class Stats:
    """Thread-safe counters. ``TotalRequestCount`` counts data-plane requests only: the client's
    background ``endpoints`` polling would otherwise drown it (control calls are under ``Control``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter({name: 0 for name in COUNTERS})
        self._control: Counter[str] = Counter()
        self.client_connections = 0

    def incr(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def control(self, method: str) -> None:
        with self._lock:
            self._control[method] += 1

    def connection_opened(self) -> None:
        with self._lock:
            self.client_connections += 1

    def connection_closed(self) -> None:
        with self._lock:
            self.client_connections -= 1

    def snapshot(self) -> dict:
        with self._lock:
            data = dict(self._counts)
            data["ClientConnections"] = self.client_connections
            data["Control"] = dict(self._control)
        return data


class StatsServer:
    """``GET /stats`` and ``POST /flush`` on their own port (loopback by default)."""

    def __init__(self, host: str, port: int, *, snapshot: Callable[[], dict], flush: Callable[[], None],
                 cluster: Callable[[], dict] | None = None) -> None:
        handler = _make_handler(snapshot, flush, cluster)
        self._httpd = ThreadingHTTPServer((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="dax-stats", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


def _make_handler(snapshot: Callable[[], dict], flush: Callable[[], None], cluster: Callable[[], dict] | None):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.split("?")[0] == "/stats":
                self._reply(200, snapshot())
            elif self.path.split("?")[0] == "/cluster" and cluster is not None:
                self._reply(200, cluster())
            elif self.path == "/health":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            if self.path == "/flush":
                flush()
                self._reply(200, {"flushed": True})
            else:
                self._reply(404, {"error": "not found"})

        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body, sort_keys=True).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - keep stats polling out of the log
            pass

    return Handler
