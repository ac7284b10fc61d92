"""Fixtures for sessions_app.realtime: the shared test Redis, and a private one we may kill.

``rt`` is the everyday fixture: the session's test Redis, flushed around the test, with the
in-process degraded-event counters reset. ``own_redis`` starts a redis-server of its own and
points the ``default`` cache at it, so a test can kill, freeze and restart Redis without
disturbing the shared server. ``redis_cluster`` is a Redis Cluster of 3 primaries for the whole
session (started on first use), and ``cluster`` turns cluster mode (``REDIS_CLUSTER``) on against
it for one test.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import caches
from django_redis.pool import ConnectionFactory
from redis.cluster import RedisCluster

from devtools import procs
from sessions_app.realtime import degraded_events_reset
from sessions_app.realtime.client import redis_cluster_forget


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


# --- the cluster --------------------------------------------------------------------------------

@dataclass
class Cluster:
    """A Redis Cluster of our own: 3 primaries on 127.0.0.1, no replicas, no persistence."""

    ports: list[int]
    workdir: Path
    log_dir: Path | None
    started: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> None:
        self.started = procs.start_redis_cluster(self.ports, workdir=self.workdir, log_dir=self.log_dir)

    def kill(self) -> None:
        for proc in self.started:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)

    def restart(self) -> None:
        """The same nodes again (their nodes-<port>.conf keeps the slots): the cluster comes back."""
        server = shutil.which("redis-server")
        self.started = []
        for port in self.ports:
            args = [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                    "--cluster-config-file", str(self.workdir / f"nodes-{port}.conf"), "--dir", str(self.workdir),
                    "--save", "", "--appendonly", "no", "--daemonize", "no"]
            log = (self.log_dir / f"redis-cluster-{port}.log") if self.log_dir else None
            self.started.append(procs.spawn(args, log))
        for proc, port in zip(self.started, self.ports):
            procs.wait_for_port("127.0.0.1", port, timeout=20, proc=proc, name="redis-server (cluster)")
        procs.redis_cluster_wait_ok(self.ports, timeout=30)

    def stop(self) -> None:
        for proc in self.started:
            procs.stop(proc)


def new_cluster(log_dir: Path | None) -> Cluster:
    cluster = Cluster(ports=procs.free_redis_cluster_ports(3), workdir=Path(tempfile.mkdtemp(prefix="redis-cluster-")),
                      log_dir=log_dir)
    cluster.start()
    return cluster


@pytest.fixture(scope="session")
def redis_cluster(infra) -> Iterator[Cluster]:
    cluster = new_cluster(infra["logs"])
    try:
        yield cluster
    finally:
        cluster.stop()


@contextmanager
def cluster_mode(url: str, settings) -> Iterator[None]:
    """``REDIS_CLUSTER`` on and the ``default`` cache on ``url`` for the block."""
    previous = settings.CACHES["default"]["LOCATION"]
    settings.REDIS_CLUSTER = True
    _use_cache_location(url)
    try:
        yield
    finally:
        redis_cluster_forget()
        settings.REDIS_CLUSTER = False
        _use_cache_location(previous)


@pytest.fixture
def cluster(redis_cluster, settings) -> Iterator[RedisCluster]:
    """Cluster mode on the session's cluster, flushed around the test; yields a client of its own."""
    degraded_events_reset()
    client = RedisCluster.from_url(redis_cluster.url)
    client.flushall()
    try:
        with cluster_mode(redis_cluster.url, settings):
            yield client
    finally:
        client.flushall()
        client.close()
        degraded_events_reset()
