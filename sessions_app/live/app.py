"""The SSE server: a small ASGI callable.

Why not Django's async views: each open stream would run Django's whole middleware stack, most of
it synchronous (sessions, auth, axes, CSP, messages), which under ASGI Django adapts by hopping to
a single shared thread per request; the long-lived response would then carry a request object, a
middleware chain and Django's disconnect handling for hours. Here the request is parsed once, the
cookie checked once (``auth.viewer_allowed``, the console's rule), and the connection from then on
is one task, one pub/sub connection and a few small buffers. CORS (the console and this server
are on different ports under `make run`) and the client's disconnect (``http.disconnect``, which
ends the stream and closes its pub/sub connection at once) are handled explicitly.

Each stream:

- ``retry: <ms>`` first, then ``id: <event id>`` / ``event: <kind>`` / ``data: <the event's JSON>``
  per pub/sub message, and a ``: keepalive`` comment after ``SSE_KEEPALIVE_SECONDS`` of silence;
- with ``Last-Event-ID`` (the header EventSource sends when it reconnects, or the
  ``last_event_id`` query parameter for a new EventSource): the activity stream replays the events
  of ``activity:recent`` with a greater id (compared as ints) — preceded by ``event: resync`` when
  the capped set may already have dropped some; a session stream sends ``event: resync`` (the page
  reloads its timeline: a session's events are not kept anywhere a replay could read them);
- Redis down or lost: ``event: unavailable``, then the stream ends (the page polls instead);
- bounded: at most ``max_streams`` open streams per process (then 503), each at most
  ``max_lifetime`` seconds (then it ends and the browser reconnects with ``Last-Event-ID``: that
  is also when the cookie and the permission are checked again), and a write that the client does
  not take within ``write_timeout`` ends it (a stalled client must not hold its buffers).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import parse_qs, urlsplit

from django.conf import settings

from sessions_app.exceptions import InvalidInput, RedisUnavailable
from sessions_app.ids import validate_id
from sessions_app.realtime.subscriptions import (
    Event,
    activity_after,
    activity_channel,
    async_redis,
    async_redis_close,
    event_id_int,
    events_subscribe,
    session_channel,
)

from .auth import session_key_from_cookies, viewer_allowed

log = logging.getLogger("sessions_app.live")

Scope = dict
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]

_SESSION_PATH = re.compile(r"/events/sessions/([^/]+)/?")
_EVENT_NAME = re.compile(r"[a-z_]{1,32}")


def sse_frame(*, data: str, event: str = "", id: str = "", retry_ms: int | None = None) -> bytes:
    """One SSE message. ``data`` may hold newlines (each line becomes a ``data:`` line)."""
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {int(retry_ms)}")
    if id:
        lines.append(f"id: {id}")
    if event:
        lines.append(f"event: {event}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return ("\n".join(lines) + "\n\n").encode()


def event_frame(event: Event) -> bytes:
    kind = event.kind if _EVENT_NAME.fullmatch(event.kind) else "message"
    # Ids are stream sequence numbers; anything else (a newline!) would corrupt the framing.
    event_id = event.id if event_id_int(event.id) is not None else ""
    return sse_frame(id=event_id, event=kind, data=event.body)


class _Closed(Exception):
    """The client did not take a write in time."""


class EventsApp:
    def __init__(self, *, console_origins: Iterable[str] = (), max_streams: int = 1000,
                 max_lifetime: float = 600.0, write_timeout: float = 10.0, retry_ms: int = 3000,
                 keepalive: float | None = None) -> None:
        self.console_origins = {o.rstrip("/") for o in console_origins if o}
        self.max_streams = max_streams
        self.max_lifetime = max_lifetime
        self.write_timeout = write_timeout
        self.retry_ms = retry_ms
        self._keepalive = keepalive
        self.active = 0

    @property
    def keepalive(self) -> float:
        return self._keepalive if self._keepalive is not None else settings.SSE_KEEPALIVE_SECONDS

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await self._lifespan(receive, send)
        if scope["type"] != "http":
            return  # a WebSocket: refused by the server (no accept)
        path, method = scope["path"], scope["method"]
        headers = _headers(scope)
        if path == "/events/health":
            return await _plain(send, 200, json.dumps({"status": "ok", "streams": self.active}),
                                content_type=b"application/json")
        if path.rstrip("/") == "/events/activity":
            channel, session_id = activity_channel(), ""
        elif (match := _SESSION_PATH.fullmatch(path)) and _valid_id(match.group(1)):
            session_id = match.group(1)
            channel = session_channel(session_id=session_id)
        else:
            return await _plain(send, 404, "not found")

        cors = self._cors(headers)
        if cors is None:
            return await _plain(send, 403, "origin not allowed")
        if method == "OPTIONS":  # a preflight (Last-Event-ID is not a CORS-safelisted header)
            return await _plain(send, 204, "", extra=cors + [
                (b"access-control-allow-methods", b"GET, HEAD"),
                (b"access-control-allow-headers", b"last-event-id, cache-control"),
                (b"access-control-max-age", b"600")])
        if method not in ("GET", "HEAD"):
            return await _plain(send, 405, "method not allowed", extra=cors + [(b"allow", b"GET, HEAD")])
        if not await viewer_allowed(session_key_from_cookies(headers.get("cookie", ""))):
            return await _plain(send, 403, "forbidden", extra=cors)
        if self.active >= self.max_streams:
            return await _plain(send, 503, "too many streams", extra=cors + [(b"retry-after", b"10")])
        start = {"type": "http.response.start", "status": 200, "headers": cors + [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),  # nginx and friends: do not buffer the stream
        ]}
        if method == "HEAD":
            await send(start)
            return await send({"type": "http.response.body", "body": b""})
        last_id = headers.get("last-event-id") or _query(scope, "last_event_id")
        self.active += 1
        try:
            await send(start)
            await self._serve(receive, send, channel=channel, session_id=session_id, last_id=last_id.strip())
        finally:
            self.active -= 1

    # --- one stream ------------------------------------------------------------------------------
    async def _serve(self, receive: Receive, send: Send, **stream) -> None:
        producer = asyncio.create_task(self._produce(send, **stream))
        gone = asyncio.create_task(_disconnected(receive))
        try:
            await asyncio.wait({producer, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (producer, gone):
                task.cancel()
            # Waits for the producer's cleanup too: its pub/sub connection is closed by now.
            results = await asyncio.gather(producer, gone, return_exceptions=True)
        if isinstance(results[0], Exception) and not isinstance(results[0], (_Closed, OSError)):
            log.error("event stream failed", exc_info=results[0])
        if not gone.cancelled() and gone.done():
            return  # the client went away: nothing more to send
        try:
            await asyncio.wait_for(send({"type": "http.response.body", "body": b""}), self.write_timeout)
        except (OSError, asyncio.TimeoutError):
            pass

    async def _write(self, send: Send, body: bytes) -> None:
        try:
            await asyncio.wait_for(send({"type": "http.response.body", "body": body, "more_body": True}),
                                   self.write_timeout)
        except asyncio.TimeoutError as exc:
            raise _Closed from exc

    async def _produce(self, send: Send, *, channel: str, session_id: str, last_id: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            async_redis(max_connections=self.max_streams + 16)  # the first call sizes the pool
            async with events_subscribe(channel=channel) as subscription:
                # Subscribed before anything is read: an event published from now on is delivered,
                # so the replay below cannot leave a hole between itself and the live events.
                await self._write(send, f"retry: {int(self.retry_ms)}\n: subscribed\n\n".encode())
                replayed = await self._catch_up(send, session_id=session_id, last_id=last_id)
                ends_at = loop.time() + self.max_lifetime * random.uniform(0.85, 1.0)  # no reconnect herd
                last_write = loop.time()
                while True:
                    now = loop.time()
                    if now >= ends_at:
                        await self._write(send, b": stream lifetime reached, reconnect\n\n")
                        return
                    wait = max(0.0, min(self.keepalive - (now - last_write), ends_at - now))
                    event = await subscription.next_event(timeout=wait)
                    if event is not None:
                        if event.id in replayed:
                            replayed.discard(event.id)  # at least once: the replay had it already
                            continue
                        await self._write(send, event_frame(event))
                        last_write = loop.time()
                    elif loop.time() - last_write >= self.keepalive:
                        await self._write(send, b": keepalive\n\n")
                        last_write = loop.time()
        except RedisUnavailable:
            body = json.dumps({"reason": "redis_unavailable", "session_id": session_id or None})
            await self._write(send, sse_frame(retry_ms=max(self.retry_ms, 10_000), event="unavailable", data=body))

    async def _catch_up(self, send: Send, *, session_id: str, last_id: str) -> set[str]:
        """What a reconnecting client missed; returns the ids replayed (to drop their repeats)."""
        if not last_id:
            return set()
        if session_id:
            body = json.dumps({"session_id": session_id, "after_event_id": last_id})
            await self._write(send, sse_frame(event="resync", data=body))
            return set()
        after = event_id_int(last_id)
        if after is None:
            await self._write(send, sse_frame(event="resync", data=json.dumps({"after_event_id": None})))
            return set()
        backlog = await activity_after(after_id=after)
        if backlog.gap:
            await self._write(send, sse_frame(event="resync", data=json.dumps({"after_event_id": last_id})))
        for event in backlog.events:
            await self._write(send, event_frame(event))
        return {event.id for event in backlog.events}

    # --- the rest -------------------------------------------------------------------------------
    def _cors(self, headers: dict[str, str]) -> list[tuple[bytes, bytes]] | None:
        """The CORS headers for this request's Origin; None if the origin is not allowed."""
        origin = headers.get("origin", "").rstrip("/")
        if not origin:
            return []  # not a cross-origin browser request
        if origin in self.console_origins:
            return [(b"access-control-allow-origin", origin.encode()),
                    (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin")]
        if urlsplit(origin).netloc == headers.get("host", ""):
            return []  # same origin (behind the load balancer's /events/ rule)
        return None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await async_redis_close()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


def events_application(**options) -> EventsApp:
    """The ASGI application (see ``EventsApp`` for the options)."""
    return EventsApp(**options)


def _valid_id(value: str) -> bool:
    try:
        validate_id(value, field="session_id")
    except InvalidInput:
        return False
    return True


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _query(scope: Scope, name: str) -> str:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else ""


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _plain(send: Send, status: int, text: str, *, content_type: bytes = b"text/plain; charset=utf-8",
                 extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", content_type), (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"), *(extra or [])]})
    await send({"type": "http.response.body", "body": body})
