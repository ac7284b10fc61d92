"""The change-feed consumer as the scenarios run it (7 ``stream``, 8 ``sse``): a
``manage.py stream_consume`` subprocess, and its progress read the way ``stream_consume --status``
reads it (``realtime.stream_progress``)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time

from .stack import ROOT, process_cpu_seconds

QUIET_SECONDS = 2.0  # no new records for this long: the consumer is caught up
BUCKET = 10  # realtime.keys.STREAM_BUCKET_SECONDS


class ConsumerProgress:
    """Polls the consumers' cumulative record count (stream_progress) and the consumer's CPU."""

    def __init__(self, pid: int, since: float):
        self.pid, self.since = pid, since

    def sample(self) -> tuple[float, int, float]:
        from sessions_app.realtime import stream_progress

        now = time.time()
        seconds = BUCKET * (math.ceil((now - self.since) / BUCKET) + 2)
        progress = stream_progress(seconds=seconds, now=now)
        return now, (progress.records if progress else 0), process_cpu_seconds(self.pid)

    def until_quiet(self, *, timeout: float, proc: subprocess.Popen) -> tuple[float, int, float]:
        """(time, records, cpu) when the count last moved, once it has stood still QUIET_SECONDS."""
        last = self.sample()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"stream_consume exited with code {proc.returncode}")
            time.sleep(0.25)
            now = self.sample()
            if now[1] != last[1]:
                last = now
            elif now[0] - last[0] >= QUIET_SECONDS:
                return last
        raise RuntimeError(f"the consumer did not catch up within {timeout:.0f}s")


def consumer_start(stack, log_path, *, table: str, name: str = "bench") -> subprocess.Popen:
    """``manage.py stream_consume`` on ``table`` in a process group of its own, logging to
    ``log_path``, through the bench's DAX node."""
    env = dict(os.environ)
    env.update(DYNAMODB_TABLE=table, DAX_ENDPOINTS=stack.dax_endpoint, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "manage.py", "stream_consume", "--consumer-id", f"{name}-{os.getpid()}"],
                            cwd=ROOT, env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def consumer_wait_reading(proc: subprocess.Popen, log_path, timeout: float = 60) -> None:
    """Until the consumer says it reads its stream (its log line), or fails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b" reading arn:" in log_path.read_bytes():
            return
        if proc.poll() is not None:
            raise RuntimeError(f"stream_consume exited with code {proc.returncode}: {log_path.read_text()[-2000:]}")
        time.sleep(0.05)
    raise RuntimeError(f"stream_consume did not start within {timeout:.0f}s")
