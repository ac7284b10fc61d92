"""Fixtures for the change feed: the test table's real DynamoDB Local stream, consumers run in
this process (``StreamConsumer.step``) or as ``manage.py stream_consume`` subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from devtools import procs
from sessions_app import dynamo
from sessions_app.streams.consumer import StreamConsumer, stream_arn_of
from sessions_app.streams.dispatch import handlers_from_settings

ROOT = Path(__file__).resolve().parent.parent.parent
PROBE = "tests.streams.probe.record"


@pytest.fixture
def stream(ddb, redis_client, settings):
    settings.STREAM_LEASE_SECONDS = 2.0
    settings.STREAM_POLL_SECONDS = 0.05
    settings.STREAM_DISCOVERY_SECONDS = 0.5
    arn = stream_arn_of()
    assert arn, "table_ensure enables the stream"
    return arn


def make_consumer(arn: str, *, name: str = "c1", handlers=None) -> StreamConsumer:
    return StreamConsumer(stream_arn=arn, handlers=handlers if handlers is not None else handlers_from_settings(),
                          consumer_id=name)


def drain(consumer: StreamConsumer, *, until=None, timeout: float = 20.0) -> None:
    """Step ``consumer`` until it has read everything there is (two idle passes) and ``until``
    (if given) holds."""
    deadline = time.monotonic() + timeout
    idle = 0
    while time.monotonic() < deadline:
        busy = consumer.step()
        idle = 0 if busy else idle + 1
        if idle >= 2 and (until is None or until()):
            return
        if not busy:
            time.sleep(0.05)
    pytest.fail("the consumer did not catch up in time")


def stream_records(arn: str) -> list[dict]:
    """Every record of the stream's shards, read from the trim horizon (what GetRecords gives)."""
    client = dynamo.streams_client()
    records = []
    for shard in client.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = client.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return records


class ConsumerProcesses:
    """``manage.py stream_consume`` subprocesses on the test table, killed at teardown."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, **extra_env: str) -> subprocess.Popen:
        env = dict(os.environ)
        env.update({
            "DYNAMODB_TABLE": settings.DYNAMODB_TABLE, "DYNAMODB_ENDPOINT": settings.DYNAMODB_ENDPOINT,
            "REDIS_URL": settings.CACHES["default"]["LOCATION"], "DAX_ENDPOINTS": "",
            "STREAM_LEASE_SECONDS": str(settings.STREAM_LEASE_SECONDS), "STREAM_POLL_SECONDS": "0.05",
            "STREAM_DISCOVERY_SECONDS": "0.5", "STREAM_HANDLERS": ",".join([*settings.STREAM_HANDLERS, PROBE]),
            "DJANGO_SETTINGS_MODULE": "mangaassist.settings", "MANGAASSIST_ENV": "local", "PYTHONUNBUFFERED": "1",
            **extra_env,
        })
        proc = subprocess.Popen([sys.executable, "manage.py", "stream_consume", "--consumer-id", name], cwd=ROOT,
                                env=env, stdout=(self.logs / f"{name}.log").open("ab"), stderr=subprocess.STDOUT,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            procs.stop(proc, timeout=10)


@pytest.fixture
def consumer_procs(stream, tmp_path):
    group = ConsumerProcesses(tmp_path)
    yield group
    group.stop_all()
