"""Benchmark (not a test): summary throughput per worker process, and trigger-to-visible latency.

    .venv/bin/python bench/summaries.py [--sessions 10] [--samples 30]

Starts its own DynamoDB Local and redis-server on free ports (nothing shared with `make run`),
bulk-loads sessions of 20, 100 and 500 turns, and runs ONE `celery -A mangaassist worker
--pool=solo` process (the default extractive summarizer):

- throughput: enqueue every session of one size, time until every summary is visible (strongly
  consistent reads) → summaries per minute for that worker process;
- latency: on the idle stack, append the turn that makes a session due (every
  SUMMARY_EVERY_N_TURNS turns) and time from turn_append's return until META shows the new
  summary → p50 / p95.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.data import turns  # noqa: E402  (the same chat lines as every other bench data set)
from devtools import procs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=10, help="sessions per size for the throughput runs")
    parser.add_argument("--samples", type=int, default=30, help="trigger-to-visible samples")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-summaries-"))
    ddb_port, redis_port = procs.free_port(), procs.free_port()
    ddb = procs.start_dynamodb_local(ddb_port, log=work / "dynamodb.log")
    redis_proc = procs.start_redis(redis_port, log=work / "redis.log")
    table = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ.update({
        "LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "mangaassist.settings",
        "DYNAMODB_ENDPOINT": f"http://127.0.0.1:{ddb_port}",
        "DYNAMODB_TABLE": table,
        "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/1",
        "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local", "AWS_REGION": "us-east-1",
        "RATE_LIMIT_TURNS": "100000",
    })
    import django

    django.setup()
    from django.conf import settings

    from mangaassist.celery import app
    from sessions_app import keys
    from sessions_app.models import SessionMeta
    from sessions_app.services.bulk import SessionSpec, sessions_bulk_load
    from sessions_app.services.summaries import TASK_NAME
    from sessions_app.services.table import table_ensure
    from sessions_app.services.turns import turn_append

    worker = None
    try:
        table_ensure(table_name=table)
        # In its own process group (procs.spawn), so procs.stop below can take it down.
        worker = procs.spawn(
            [str(Path(sys.executable).with_name("celery")), "-A", "mangaassist", "worker", "--pool=solo",
             "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel=WARNING"],
            work / "worker.log", cwd=ROOT, env=os.environ.copy(),
        )
        started = datetime.now(timezone.utc) - timedelta(hours=1)

        def through(ids: list[str]) -> dict[str, int]:
            metas = SessionMeta.batch_get([(keys.session_pk(i), keys.META_SK) for i in ids], consistent_read=True)
            return {m.session_id: int(m.summary_through or 0) for m in metas}

        def wait_all(ids: list[str], target: int, timeout: float = 600) -> None:
            deadline = time.monotonic() + timeout
            while any(v < target for v in through(ids).values()):
                if time.monotonic() > deadline:
                    raise TimeoutError("summaries did not appear")
                time.sleep(0.02)

        # Warm-up: the worker imports Django and connects before the clock starts.
        warm = [uuid.uuid4().hex]
        sessions_bulk_load(specs=[SessionSpec("bench", "web", started, turns(4), session_id=warm[0])])
        app.send_task(TASK_NAME, args=warm)
        wait_all(warm, 4, timeout=120)

        print(f"{'turns/session':>14} {'sessions':>9} {'seconds':>9} {'summaries/min':>14}")
        for size in (20, 100, 500):
            ids = [uuid.uuid4().hex for _ in range(args.sessions)]
            sessions_bulk_load(specs=[SessionSpec(f"bench-{size}", "web", started, turns(size), session_id=i) for i in ids])
            t0 = time.perf_counter()
            for i in ids:
                app.send_task(TASK_NAME, args=[i])
            wait_all(ids, size)
            elapsed = time.perf_counter() - t0
            print(f"{size:>14} {len(ids):>9} {elapsed:>9.2f} {len(ids) / elapsed * 60:>14.1f}")

        n = settings.SUMMARY_EVERY_N_TURNS
        ids = [uuid.uuid4().hex for _ in range(args.samples)]
        sessions_bulk_load(specs=[SessionSpec("bench-lat", "web", started, turns(n - 1), session_id=i) for i in ids])
        latencies = []
        for i in ids:
            turn_append(session_id=i, role="user", text="One more question about Frieren vol. 4?", client_msg_id=uuid.uuid4().hex)
            t0 = time.perf_counter()
            while True:
                meta = SessionMeta.get(keys.session_pk(i), keys.META_SK, consistent_read=True)
                if int(meta.summary_through or 0) >= n:
                    break
                time.sleep(0.002)
            latencies.append((time.perf_counter() - t0) * 1000)
            time.sleep(random.uniform(0.05, 0.1))  # idle stack: one trigger at a time
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
        print(f"trigger-to-visible over {len(latencies)} triggers (session of {n} turns): "
              f"p50 {statistics.median(latencies):.1f} ms, p95 {p95:.1f} ms")
    finally:
        if worker is not None:
            procs.stop(worker)
        procs.stop(redis_proc)
        procs.stop(ddb)


if __name__ == "__main__":
    main()
