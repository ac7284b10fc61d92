"""Per-process counters for the append benchmark, installed in gunicorn workers by bench.settings
when ``BENCH_COUNTERS_DIR`` is set (never in the product's settings).

Counted per worker process and written to ``$BENCH_COUNTERS_DIR/<pid>.json`` at the end of every
request, so the bench can sum all workers between two points in time:

- ``requests`` and ``request_ms``: Django request time (request_started → request_finished);
- ``redis_round_trips``: socket sends by redis-py (a pipeline is one send = one round trip);
- ``ddb``: calls and milliseconds per DynamoDB/DAX operation, timed around the routed connection's
  call (so ``TransactWriteItems`` is the transaction's own time as the app sees it).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict

_lock = threading.Lock()
_counters = {"requests": 0, "request_ms": 0.0, "redis_round_trips": 0}
_ddb: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
_local = threading.local()
_installed = False


def install(directory: str) -> None:
    global _installed
    if _installed:
        return
    _installed = True
    import redis.connection
    from django.core.signals import request_finished, request_started

    from sessions_app import dynamo

    original_send = redis.connection.AbstractConnection.send_packed_command

    def send_packed_command(self, command, check_health=True):
        with _lock:
            _counters["redis_round_trips"] += 1
        return original_send(self, command, check_health)

    redis.connection.AbstractConnection.send_packed_command = send_packed_command

    original_call = dynamo.RoutedConnection._make_api_call

    def make_api_call(self, operation_name, operation_kwargs):
        started = time.perf_counter()
        try:
            return original_call(self, operation_name, operation_kwargs)
        finally:
            elapsed = (time.perf_counter() - started) * 1000
            with _lock:
                entry = _ddb[operation_name]
                entry[0] += 1
                entry[1] += elapsed

    dynamo.RoutedConnection._make_api_call = make_api_call
    path = os.path.join(directory, "{pid}.json")

    def started(sender, **kwargs):
        _local.started = time.perf_counter()

    def finished(sender, **kwargs):
        begun = getattr(_local, "started", None)
        with _lock:
            if begun is not None:
                _counters["requests"] += 1
                _counters["request_ms"] += (time.perf_counter() - begun) * 1000
            snapshot = dict(_counters, ddb={k: list(v) for k, v in _ddb.items()})
        _local.started = None
        tmp = path.format(pid=f"{os.getpid()}.tmp")
        with open(tmp, "w") as fh:
            json.dump(snapshot, fh)
        os.replace(tmp, path.format(pid=os.getpid()))

    request_started.connect(started, weak=False)
    request_finished.connect(finished, weak=False)


def read_totals(directory: str) -> dict:
    """Sum of every worker's counters in ``directory`` (called by the bench, outside the server)."""
    total = {"requests": 0, "request_ms": 0.0, "redis_round_trips": 0, "ddb": {}}
    for name in os.listdir(directory):
        if not name.endswith(".json") or name.endswith(".tmp.json"):
            continue
        try:
            with open(os.path.join(directory, name)) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            continue
        for key in ("requests", "request_ms", "redis_round_trips"):
            total[key] += data.get(key, 0)
        for op, (calls, ms) in data.get("ddb", {}).items():
            entry = total["ddb"].setdefault(op, [0, 0.0])
            entry[0] += calls
            entry[1] += ms
    return total


def delta(after: dict, before: dict) -> dict:
    out = {k: after[k] - before[k] for k in ("requests", "request_ms", "redis_round_trips")}
    out["ddb"] = {}
    for op, (calls, ms) in after["ddb"].items():
        b_calls, b_ms = before["ddb"].get(op, (0, 0.0))
        if calls - b_calls:
            out["ddb"][op] = [calls - b_calls, ms - b_ms]
    return out
