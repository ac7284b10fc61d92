"""Subscribing to the change events, for the live-updates (SSE) server: asyncio, redis-py's
``redis.asyncio``.

The rest of this package is synchronous (django-redis's pool, for the WSGI workers and Celery);
the SSE process holds one long-lived pub/sub connection per open stream, on an event loop, so it
gets its own asyncio pool here, built from the same ``CACHES["default"]`` URL and
``REDIS_SOCKET_TIMEOUT``. Channels and keys come from ``keys.py``; what the events are is in
``events.py``.

With ``REDIS_CLUSTER`` on it is an asyncio ``RedisCluster`` per event loop instead (same URL,
timeouts and per-node pool bound); a subscription is its ``ClusterPubSub``: classic SUBSCRIBE on
one connection to the node that owns the channel's slot, which hears every PUBLISH of the
cluster (events.py says why classic, not sharded, pub/sub).

No silent reconnects: the pool's connections make one attempt per command (``Retry(NoBackoff(),
0)``: redis-py's client default would reconnect and resubscribe, and the messages published in
between would be lost without anyone knowing). A lost connection raises ``RedisUnavailable``
instead; the SSE server ends the stream with ``event: unavailable`` and the browser reconnects
with ``Last-Event-ID``, which is what tells it (and us) what it missed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import redis.asyncio as aioredis
from django.conf import settings
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sessions_app.exceptions import RedisUnavailable

from . import keys
from .client import degraded_event_record, redis_cluster_enabled, redis_error_is_unavailability

# One pool (or cluster client) per event loop (an asyncio connection belongs to the loop that
# opened it): id(loop) → (loop, pool or cluster client); the loop is kept to tell a new loop that
# reuses a dead one's id apart.
_pools: dict[int, tuple[asyncio.AbstractEventLoop, aioredis.ConnectionPool | AsyncRedisCluster]] = {}


def async_redis(*, max_connections: int = 1000) -> aioredis.Redis | AsyncRedisCluster:
    """The asyncio client of the running loop (its pool is made on first use; no I/O here: a
    cluster client reads its slot map on its first command)."""
    loop = asyncio.get_running_loop()
    entry = _pools.get(id(loop))
    if entry is None or entry[0] is not loop:
        timeout = settings.SSE_REDIS_TIMEOUT  # see settings: the SSE process's own, longer
        url = settings.CACHES["default"]["LOCATION"]
        if redis_cluster_enabled():
            made: aioredis.ConnectionPool | AsyncRedisCluster = AsyncRedisCluster.from_url(
                url, max_connections=max_connections, socket_connect_timeout=timeout, socket_timeout=timeout,
                # Cluster-level retries off (the nodes' connections never retry): see the module
                # docstring; the health check as below.
                retry=Retry(NoBackoff(), 0), health_check_interval=30, dynamic_startup_nodes=False,
            )
        else:
            made = aioredis.ConnectionPool.from_url(
                url, max_connections=max_connections,
                socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0),
                # A pub/sub connection is otherwise silent: PING it so a vanished server is noticed.
                health_check_interval=30,
            )
        entry = _pools[id(loop)] = (loop, made)
    made = entry[1]
    if isinstance(made, AsyncRedisCluster):
        return made
    return aioredis.Redis(connection_pool=made)


async def async_redis_close() -> None:
    """Close the running loop's pool or cluster client (the SSE server's shutdown, the tests)."""
    entry = _pools.pop(id(asyncio.get_running_loop()), None)
    if entry is not None:
        await entry[1].aclose()


@asynccontextmanager
async def _boundary(operation: str) -> AsyncIterator[None]:
    try:
        yield
    except (rx.RedisError, rx.RedisClusterException, OSError) as error:
        if not isinstance(error, OSError) and not redis_error_is_unavailability(error):
            raise
        degraded_event_record(operation=operation, error=error)
        raise RedisUnavailable(f"Redis unavailable during {operation}", operation=operation) from error


@dataclass(frozen=True)
class Event:
    """One change event as published: its parsed fields and its JSON, verbatim."""

    fields: dict
    body: str

    @property
    def id(self) -> str:
        return str(self.fields.get("id", ""))

    @property
    def kind(self) -> str:
        return str(self.fields.get("kind", "message"))


def event_id_int(value: object) -> int | None:
    """A stream sequence number (a decimal string) as an int; None if it is not one."""
    text = str(value)
    return int(text) if text.isdecimal() and len(text) <= 64 else None


def _event(raw: bytes | str) -> Event | None:
    body = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    try:
        fields = json.loads(body)
    except ValueError:
        return None
    return Event(fields=fields, body=body) if isinstance(fields, dict) else None


class Subscription:
    """One pub/sub connection subscribed to one channel (``events_subscribe``)."""

    def __init__(self, pubsub: aioredis.client.PubSub, channel: str) -> None:
        self._pubsub, self.channel = pubsub, channel

    async def next_event(self, *, timeout: float) -> Event | None:
        """The next event, or None when ``timeout`` seconds pass without one. Redis lost:
        ``RedisUnavailable``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        async with _boundary("events_subscribe"):
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    return None
                message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
                # A cancel that lands as redis-py's read timeout expires is turned into that
                # timeout by the timeout context (the Python 3.11 race, bpo-42130 and kin) and
                # get_message answers None: the task would go on as if never cancelled, and an
                # SSE stream whose browser left would keep its connection forever (writes to a
                # gone client raise nothing). The task still says it is cancelling: honour it.
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError()
                if message is None or message.get("type") != "message":
                    continue  # a subscribe confirmation, a health-check pong, or nothing yet
                event = _event(message["data"])
                if event is not None:
                    return event


def session_channel(*, session_id: str) -> str:
    return keys.events_session_channel(session_id=session_id)


def activity_channel() -> str:
    return keys.events_activity_channel()


@asynccontextmanager
async def events_subscribe(*, channel: str) -> AsyncIterator[Subscription]:
    """Subscribe to ``channel`` (from ``session_channel`` / ``activity_channel``) for the block;
    the pub/sub connection is closed on the way out, however the block ends. Redis down:
    ``RedisUnavailable`` on entry."""
    client = async_redis()
    pubsub = client.pubsub()
    try:
        async with _boundary("events_subscribe"):
            if isinstance(client, AsyncRedisCluster):
                # ClusterPubSub picks the channel's node from the slot map: read it first.
                await client.initialize()
            await pubsub.subscribe(channel)
        yield Subscription(pubsub, channel)
    finally:
        # aclose() also disconnects: the server drops the subscription with the connection. A
        # cancelled task (the browser went away) still gets here; shield the close itself.
        try:
            await asyncio.shield(pubsub.aclose())
        except (rx.RedisError, rx.RedisClusterException, OSError, asyncio.CancelledError):
            pass


@dataclass(frozen=True)
class Backlog:
    """The recent events a reconnecting client missed, oldest first; ``gap``: older ones may
    have been trimmed from the capped set already (the client should reload instead)."""

    events: list[Event]
    gap: bool


async def activity_after(*, after_id: int) -> Backlog:
    """The events of ``activity:recent`` whose id (as an int) is greater than ``after_id``.
    Redis down: ``RedisUnavailable``."""
    async with _boundary("activity_after"):
        rows = await async_redis().zrange(keys.activity_recent_key(), 0, -1)
    events = [e for e in map(_event, rows) if e is not None and event_id_int(e.id) is not None]
    events.sort(key=lambda e: event_id_int(e.id))
    missed = [e for e in events if event_id_int(e.id) > after_id]
    full = len(rows) >= keys.ACTIVITY_RECENT_LIMIT
    gap = full and bool(events) and event_id_int(events[0].id) > after_id
    return Backlog(events=missed, gap=gap)
