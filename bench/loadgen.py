"""A minimal HTTP/1.1 load generator on raw loopback sockets (cheap per request, so the client
takes as little of this 2-core machine as possible from the server it measures).

gunicorn's sync workers close the connection after every response (as in production), so every
request opens a connection: that cost is part of what is measured, for every variant alike.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable


def build(method: str, path: str, *, token: str | None = None, body: bytes | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close", "User-Agent: mangaassist-bench"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")


def send(port: int, raw: bytes, *, timeout: float = 30.0) -> tuple[int, bytes]:
    """Send one request; return (status, whole response). Raises OSError on connection failure."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(raw)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    data = b"".join(chunks)
    try:
        status = int(data[9:12])
    except ValueError:
        status = 0
    return status, data


def header(response: bytes, name: str) -> str | None:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    needle = name.lower() + ":"
    for line in head.split("\r\n")[1:]:
        if line.lower().startswith(needle):
            return line.split(":", 1)[1].strip()
    return None


def timed(port: int, raw: bytes) -> tuple[int, float, bytes]:
    started = time.perf_counter()
    try:
        status, data = send(port, raw)
    except OSError:
        return 0, (time.perf_counter() - started) * 1000, b""
    return status, (time.perf_counter() - started) * 1000, data


@dataclass
class LoopResult:
    elapsed: float
    latencies_ms: list[float] = field(default_factory=list)  # successful requests only
    statuses: Counter = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    @property
    def per_second(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0


def closed_loop(port: int, make: Callable[[int], bytes], *, concurrency: int, seconds: float,
                ok: Callable[[int], bool] = lambda status: 200 <= status < 300,
                max_requests: int = 1_000_000) -> LoopResult:
    """``concurrency`` clients, each sending its next request as soon as the previous one answered,
    for ``seconds`` (bounded by ``max_requests`` too). ``make(i)`` builds request number i."""
    counter = itertools.count()
    lock = threading.Lock()
    result = LoopResult(elapsed=0.0)
    stop_at = time.perf_counter() + seconds
    start = threading.Barrier(concurrency + 1)

    def client() -> None:
        latencies, statuses = [], Counter()
        start.wait()
        while time.perf_counter() < stop_at:
            i = next(counter)
            if i >= max_requests:
                break
            status, ms, _ = timed(port, make(i))
            statuses[status] += 1
            if ok(status):
                latencies.append(ms)
        with lock:
            result.latencies_ms.extend(latencies)
            result.statuses.update(statuses)

    threads = [threading.Thread(target=client, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(seconds + 60)
    result.elapsed = time.perf_counter() - began
    return result
