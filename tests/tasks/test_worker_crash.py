"""A worker process SIGKILLed mid-summary: the task is redelivered to a second worker
(``acks_late`` + the Redis transport's visibility timeout) and the summary is written once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from devtools import procs
from mangaassist.celery import app as celery_app
from sessions_app.services.summaries import TASK_NAME
from tests.builders import make_session

from tests.fixtures.celery_workers import GATED_SUMMARIZER, meta_of, queue_empty, summaries_of, wait_for

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def _start_worker(name: str, env: dict, log: Path) -> subprocess.Popen:
    celery = Path(sys.executable).with_name("celery")
    return subprocess.Popen(
        [str(celery), "-A", "mangaassist", "worker", "--pool=solo", "--concurrency=1", "-n", f"{name}@%h",
         "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def test_sigkilled_worker_task_is_redelivered_and_written_exactly_once(ddb, broker, broker_redis, gated, infra, tmp_path):
    meta = make_session(turns=6)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "mangaassist.settings",
        "DYNAMODB_TABLE": settings.DYNAMODB_TABLE,
        "SUMMARIZER": GATED_SUMMARIZER,
        # Redeliver an unacked message 2 s after it was reserved; look for such messages every second.
        "CELERY_VISIBILITY_TIMEOUT": "2",
        "CELERY_UNACKED_RESTORE_INTERVAL": "1",
    }
    log = tmp_path / "workers.log"
    first = _start_worker("first", env, log)
    second = None
    try:
        celery_app.send_task(TASK_NAME, args=[meta.session_id], task_id="crash-task-1")
        wait_for(lambda: len(gated.arrived()) == 1, timeout=60, what=f"the first worker to start summarising (log: {log})")
        assert gated.arrived()[0].startswith(f"{first.pid}:")
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        assert summaries_of(meta.session_id) == []  # it died before writing anything
        assert broker_redis.zcard("unacked_index") == 1  # ...and without acknowledging the message
        gated.open()
        second = _start_worker("second", env, log)
        wait_for(lambda: int(meta_of(meta.session_id).summary_through or 0) == 6, timeout=60,
                 what=f"the redelivered task to write the summary (log: {log})")
        wait_for(lambda: queue_empty(broker_redis), timeout=30, what="the second worker to ack the message")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                procs.stop(proc)
    arrived = gated.arrived()
    assert len(arrived) == 2 and arrived[1].startswith(f"{second.pid}:")  # redelivered to the second worker
    [item] = summaries_of(meta.session_id)
    assert (int(item.through_seq), item.task_id) == (6, "crash-task-1")
