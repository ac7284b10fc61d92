"""The live-updates (SSE) server under N open streams: its memory and CPU while idle, and the
delivery latency publish → client.

    .venv/bin/python -m bench.sse_probe [--streams 200] [--sessions 20] [--events 200]

Starts its own redis-server (free port) and the SSE server exactly as `make run` does (uvicorn,
mangaassist.asgi_events, its own process) on a throw-away SQLite database with one Viewer; opens
``--streams`` streams (a tenth on /events/activity, the rest spread over ``--sessions`` session
streams) from one asyncio client; measures the SSE process's RSS and CPU over ``--idle`` seconds;
then publishes ``--events`` events (one every 20 ms, round-robin over the sessions, through
``realtime.change_events_publish`` as the change feed does) and records, for every delivery, the
time from just before the publish to the event's last byte read by the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from devtools import procs

from .stack import process_cpu_seconds

ROOT = procs.ROOT


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def open_stream(port: int, path: str, cookie: str, subscribed: asyncio.Event, counter: list[int],
                      arrivals: list[tuple[str, float]]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                 f"Cookie: {cookie}\r\n\r\n".encode())
    await writer.drain()
    status = await reader.readline()
    assert b" 200 " in status, status
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    try:
        while True:
            line = await reader.readline()  # chunk-size lines and data lines alike; good enough
            if not line:
                return
            if b": subscribed" in line:
                counter[0] += 1
                if counter[0] == counter[1]:
                    subscribed.set()
            elif line.startswith(b"data: "):
                arrivals.append((json.loads(line[6:])["id"], time.time()))
    finally:
        writer.close()


async def run(args, port: int, cookie: str, proc: subprocess.Popen) -> dict:
    from sessions_app.realtime import change_events_publish

    subscribed, counter, arrivals = asyncio.Event(), [0, args.streams], []
    sessions = [f"bench-s{i}" for i in range(args.sessions)]
    paths = ["/events/activity" if i % 10 == 0 else f"/events/sessions/{sessions[i % len(sessions)]}"
             for i in range(args.streams)]
    rss_before = rss_mib(proc.pid)
    tasks = [asyncio.create_task(open_stream(port, p, cookie, subscribed, counter, arrivals)) for p in paths]
    started = time.monotonic()
    await asyncio.wait_for(subscribed.wait(), 60)
    connect_s = time.monotonic() - started
    await asyncio.sleep(1)
    cpu0, t0 = process_cpu_seconds(proc.pid), time.monotonic()
    await asyncio.sleep(args.idle)
    idle_cpu = (process_cpu_seconds(proc.pid) - cpu0) / (time.monotonic() - t0) * 100
    rss_idle = rss_mib(proc.pid)

    sent: dict[str, float] = {}
    cpu1, t1 = process_cpu_seconds(proc.pid), time.monotonic()
    for i in range(args.events):
        event_id = str(10**20 + i)
        sent[event_id] = time.time()
        await asyncio.to_thread(change_events_publish, events=[{
            "id": event_id, "session_id": sessions[i % len(sessions)], "kind": "turn", "seq": i + 1,
            "role": "user", "at": "2026-01-01T00:00:00.000000Z", "at_ms": int(time.time() * 1000)}])
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)
    busy_cpu = (process_cpu_seconds(proc.pid) - cpu1) / (time.monotonic() - t1) * 100
    per_session = sum(1 for p in paths if p != "/events/activity") / len(sessions)
    activity = sum(1 for p in paths if p == "/events/activity")
    expected = int(args.events * (per_session + activity))
    latencies = [(at - sent[eid]) * 1000 for eid, at in arrivals if eid in sent]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "streams": args.streams, "connect_all_s": round(connect_s, 2),
        "rss_mib_before": round(rss_before, 1), "rss_mib_idle": round(rss_idle, 1),
        "rss_kib_per_stream": round((rss_idle - rss_before) * 1024 / args.streams, 1),
        "idle_cpu_pct": round(idle_cpu, 2), "cpu_pct_while_publishing_50_per_s": round(busy_cpu, 1),
        "deliveries": len(latencies), "deliveries_expected": expected,
        "latency_ms_p50": round(pct(latencies, 50), 2), "latency_ms_p95": round(pct(latencies, 95), 2),
        "latency_ms_max": round(max(latencies), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--idle", type=float, default=10.0)
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="sse-probe-"))
    redis_port, sse_port = procs.free_port(), procs.free_port()
    redis = procs.start_redis(redis_port, log=work / "redis.log")
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}", "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
           "CELERY_BROKER_URL": f"redis://127.0.0.1:{redis_port}/1", "MANGAASSIST_LOCAL_DIR": str(work),
           "DJANGO_SETTINGS_MODULE": "mangaassist.settings", "SSE_MAX_STREAMS": str(args.streams + 10)}
    os.environ.update(env)
    proc = None
    try:
        import django

        django.setup()
        from django.contrib.auth.models import Group, User
        from django.contrib.sessions.backends.db import SessionStore
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)
        user = User.objects.create_user(username="bench-viewer", password="x", is_staff=True)
        user.groups.add(Group.objects.get(name="Viewer"))
        store = SessionStore()
        store.update({"_auth_user_id": str(user.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                      "_auth_user_hash": user.get_session_auth_hash()})
        store.create()
        proc = procs.spawn([sys.executable, "-m", "uvicorn", "mangaassist.asgi_events:application", "--host", "127.0.0.1",
                            "--port", str(sse_port), "--lifespan", "on", "--no-access-log",
                            "--timeout-graceful-shutdown", "1"], work / "sse.log", cwd=ROOT, env=env)
        procs.wait_for_port("127.0.0.1", sse_port, timeout=30, proc=proc, name="SSE server")
        result = asyncio.run(run(args, sse_port, f"sessionid={store.session_key}", proc))
        print(json.dumps(result, indent=2))
    finally:
        if proc is not None:
            procs.stop(proc)
        procs.stop(redis)
    return 0


if __name__ == "__main__":
    sys.exit(main())
