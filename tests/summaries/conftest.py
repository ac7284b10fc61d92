"""Fixtures for summary tests: the Celery app on the test broker, an in-process worker, helpers.

Workers are real: ``celery.contrib.testing.worker.start_worker`` runs a WorkController in a
thread of this process (it shares our settings, so it sees the per-test table), and the crash
test starts ``celery -A mangaassist worker`` subprocesses with the test environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from celery.contrib.testing.worker import start_worker
from django.conf import settings

from mangaassist.celery import app as celery_app
from sessions_app import keys
from sessions_app.models import SessionMeta, Summary


def wait_for(predicate: Callable[[], object], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def summaries_of(session_id: str) -> list[Summary]:
    return list(Summary.query(keys.session_pk(session_id), Summary.sk.startswith(keys.SUMMARY_PREFIX), consistent_read=True))


def meta_of(session_id: str) -> SessionMeta:
    return SessionMeta.get(keys.session_pk(session_id), keys.META_SK, consistent_read=True)


def use_broker(url: str | None) -> None:
    """Point the (process-wide) Celery app's publishing at ``url`` (None: back to the broker
    URL) and drop its pooled connections, so the next publish connects there.

    ``broker_write_url``, not ``broker_url``: Celery reads the CELERY_BROKER_URL environment
    variable (set by the ``infra`` fixture for subprocess workers) before its own config."""
    if celery_app.conf.broker_write_url == (url or celery_app.conf.broker_url):
        return
    celery_app.conf.broker_write_url = url
    # What Celery itself does after a fork (Celery._after_fork): forget the pools; kombu's
    # registry keeps each URL's pool open for whoever switches back.
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(infra, redis_client):
    """The Celery app publishing to the test Redis (database 1), emptied around the test."""
    assert celery_app.conf.broker_url == infra["broker_url"]
    use_broker(None)
    yield celery_app
    use_broker(None)


@pytest.fixture
def broker_redis(infra):
    """A raw client on the broker's Redis database (to look at the queue and the unacked set)."""
    import redis

    client = redis.Redis.from_url(infra["broker_url"])
    yield client
    client.close()


def queue_empty(client) -> bool:
    # kombu's Redis transport: the queue is a list named after it; reserved-but-unacked
    # messages sit in the "unacked" hash, indexed by the "unacked_index" sorted set.
    return client.llen("celery") == 0 and client.zcard("unacked_index") == 0


@pytest.fixture
def worker(ddb, broker, broker_redis):
    """A real Celery worker consuming the test broker in a thread of this process (5 threads)."""
    from celery.worker import state

    with start_worker(celery_app, pool="threads", concurrency=5, perform_ping_check=False,
                      shutdown_timeout=30, loglevel="WARNING") as w:

        def idle() -> bool:
            return not state.active_requests and not state.reserved_requests and queue_empty(broker_redis)

        w.wait_idle = lambda timeout=20.0: wait_for(idle, timeout=timeout, what="the worker to go idle")
        yield w


@pytest.fixture
def summarize_every(settings):
    def set_n(n: int) -> None:
        settings.SUMMARY_EVERY_N_TURNS = n

    return set_n


@pytest.fixture
def gated(settings, redis_client):
    """Select the gated summarizer; returns helpers to watch arrivals and open the gate."""
    from . import gated as gate

    settings.SUMMARIZER = "tests.summaries.gated.GatedSummarizer"

    class Gate:
        def arrived(self) -> list[str]:
            return [v.decode() for v in redis_client.lrange(gate.ARRIVED_KEY, 0, -1)]

        def open(self) -> None:
            redis_client.set(gate.OPEN_KEY, 1)

    return Gate()


__all__ = ["meta_of", "settings", "summaries_of", "wait_for"]
