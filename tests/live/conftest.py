"""The live-updates (SSE) server, served for real: uvicorn on a free port, in a thread of this
process — the test database is in-memory SQLite, which a subprocess could not see — and an SSE
client that reads the stream line by line over a real socket.

The server's database work (the cookie check) runs on asgiref's one thread-sensitive executor
thread; like pytest-django's ``live_server``, that thread is handed this thread's connection, so
the server sees the test's users and sessions inside the test's transaction (``db``, not
``transactional_db``: the migration's Viewer/Supervisor groups stay).
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import uvicorn
from asgiref.sync import sync_to_async
from django.db import connections

from devtools import procs
from sessions_app.live import EventsApp

CONSOLE_ORIGIN = "http://console.test:8000"


def _share_connections() -> dict:
    overrides = {}
    for conn in connections.all():
        if conn.vendor == "sqlite" and conn.is_in_memory_db():
            overrides[conn.alias] = conn
            conn.inc_thread_sharing()

    def install():
        for alias, conn in overrides.items():
            connections[alias] = conn

    asyncio.run(sync_to_async(install, thread_sensitive=True)())
    return overrides


def _unshare_connections(overrides: dict) -> None:
    def uninstall():
        for alias in overrides:
            del connections[alias]

    asyncio.run(sync_to_async(uninstall, thread_sensitive=True)())
    for conn in overrides.values():
        conn.dec_thread_sharing()


@dataclass
class Server:
    app: EventsApp
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def stream(self, path: str, **kwargs) -> SSEStream:
        return SSEStream.open(self.port, path, **kwargs)

    def get(self, path: str, *, headers: dict | None = None, method: str = "GET") -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()


def start_server(app: EventsApp) -> Server:
    port = procs.free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning",
                            timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"sse-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the SSE server did not start")
        time.sleep(0.02)
    return Server(app=app, port=port, server=server, thread=thread)


def stop_server(server: Server) -> None:
    server.server.should_exit = True
    server.thread.join(10)


@pytest.fixture
def sse_factory(console):
    """``sse_factory(**EventsApp options)`` → a running server (stopped after the test)."""
    overrides = _share_connections()
    servers: list[Server] = []

    def build(**options) -> Server:
        options.setdefault("console_origins", [CONSOLE_ORIGIN])
        options.setdefault("keepalive", 0.5)
        options.setdefault("retry_ms", 1500)
        server = start_server(EventsApp(**options))
        servers.append(server)
        return server

    try:
        yield build
    finally:
        for server in servers:
            stop_server(server)
        _unshare_connections(overrides)


@pytest.fixture
def sse(sse_factory) -> Server:
    return sse_factory()


@pytest.fixture
def viewer_cookie(viewer_client) -> str:
    return f"sessionid={viewer_client.cookies['sessionid'].value}"


@dataclass
class Message:
    id: str | None = None
    event: str = "message"
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> dict:
        return json.loads(self.data)


class SSEStream:
    """A text/event-stream read over a real socket (http.client undoes the chunked encoding)."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self.conn, self.response = conn, response
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.getheaders()}
        self.comments: list[str] = []
        self.retry: int | None = None

    @classmethod
    def open(cls, port: int, path: str, *, cookie: str = "", last_event_id: str = "", origin: str = "",
             timeout: float = 5.0) -> SSEStream:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        headers = {"Accept": "text/event-stream"}
        if cookie:
            headers["Cookie"] = cookie
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        if origin:
            headers["Origin"] = origin
        conn.request("GET", path, headers=headers)
        return cls(conn, conn.getresponse())

    def next(self) -> Message | None:
        """The next message (comments before it are in ``comments``); None at the end."""
        message, seen = Message(), False
        while True:
            raw = self.response.readline()
            if not raw:
                return message if seen else None
            line = raw.decode().rstrip("\n")
            if line == "":
                if seen:
                    return message
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            seen = seen or name != "retry"  # a block of only retry: dispatches nothing
            if name == "id":
                message.id = value
            elif name == "event":
                message.event = value
            elif name == "data":
                message.data = f"{message.data}\n{value}" if message.data else value
            elif name == "retry":
                message.retry = self.retry = int(value)

    def wait_comment(self, text: str) -> None:
        """Read until a comment ``text`` arrives (``subscribed``: the server is listening)."""
        while text not in self.comments:
            raw = self.response.readline()
            if not raw:
                raise AssertionError(f"the stream ended before the comment {text!r}; got {self.comments}")
            line = raw.decode().rstrip("\n")
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
            elif line.startswith("retry:"):
                self.retry = int(line.split(":", 1)[1])

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> SSEStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@pytest.fixture
def streams() -> Iterator[list[SSEStream]]:
    opened: list[SSEStream] = []
    yield opened
    for stream in opened:
        stream.close()
