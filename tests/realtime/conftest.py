"""Fixtures for sessions_app.realtime: the shared test Redis, and a private one we may kill.

``rt`` is the everyday fixture: the session's test Redis, flushed around the test, with the
in-process degraded-event counters reset. ``own_redis`` starts a redis-server of its own and
points the ``default`` cache at it, so a test can kill, freeze and restart Redis without
disturbing the shared server.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django_redis.pool import ConnectionFactory

from devtools import procs
from sessions_app.realtime import degraded_events_reset


def _use_cache_location(url: str) -> None:
    """Point the ``default`` cache at ``url`` for this thread from the next call on.

    settings.CACHES is the dict Django's cache handler reads, so changing it in place and
    dropping this thread's backend makes the next ``get_redis_connection`` build a client for
    the new URL (django-redis keys its process-wide pools by URL).
    """
    settings.CACHES["default"]["LOCATION"] = url
    try:
        del caches["default"]
    except AttributeError:
        pass


def _drop_pool(url: str) -> None:
    pool = ConnectionFactory._pools.pop(url, None)
    if pool is not None:
        pool.disconnect()


@pytest.fixture
def rt(redis_client) -> Iterator[redis.Redis]:
    degraded_events_reset()
    yield redis_client
    degraded_events_reset()


@dataclass
class OwnRedis:
    port: int
    log: object
    proc: subprocess.Popen | None = None
    client: redis.Redis = field(init=False)

    def __post_init__(self) -> None:
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()
        self.client = redis.Redis.from_url(self.url, socket_timeout=2)

    def start(self) -> None:
        self.proc = procs.start_redis(self.port, log=self.log)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a 'slow' Redis)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.thaw()
            procs.stop(self.proc)
        self.client.close()


@pytest.fixture
def own_redis(infra, tmp_path) -> Iterator[OwnRedis]:
    degraded_events_reset()
    previous = settings.CACHES["default"]["LOCATION"]
    server = OwnRedis(port=procs.free_port(), log=tmp_path / "redis.log")
    _use_cache_location(server.url)
    try:
        yield server
    finally:
        _use_cache_location(previous)
        _drop_pool(server.url)
        server.stop()
        degraded_events_reset()
