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

The pieces are shared with scenario 8 (``bench/s8_sse.py``): ``viewer_cookie``,
``sse_server_spawn`` / ``sse_wait_ready`` / ``sse_health``, ``stream_paths``, ``open_stream``,
and ``python -m bench.sse_probe hold`` — a client process that holds streams open next to the
bench's load (so its reads do not share the load generator's GIL) and reports what arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable

from devtools import procs

from .stack import process_cpu_seconds

ROOT = procs.ROOT
ACTIVITY = "/events/activity"


def rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def stream_paths(streams: int, sessions: list[str]) -> list[str]:
    """A tenth of the streams on /events/activity, the rest round-robin over the session streams."""
    paths, j = [], 0
    for i in range(streams):
        if i % 10 == 0:
            paths.append(ACTIVITY)
        else:
            paths.append(f"/events/sessions/{sessions[j % len(sessions)]}")
            j += 1
    return paths


# --- the SSE server ---------------------------------------------------------------------------------

def viewer_cookie(username: str = "bench-viewer") -> str:
    """A staff user in the Viewer group and a logged-in Django session for it, in this process's
    (already set up and migrated) database: the ``Cookie`` header value a console page would send."""
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.contrib.sessions.backends.db import SessionStore

    user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True})
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    user.groups.add(Group.objects.get(name="Viewer"))
    store = SessionStore()
    store.update({"_auth_user_id": str(user.pk), "_auth_user_backend": "django.contrib.auth.backends.ModelBackend",
                  "_auth_user_hash": user.get_session_auth_hash()})
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def sse_server_spawn(port: int, log: Path, env: dict) -> subprocess.Popen:
    """uvicorn serving ``mangaassist.asgi_events`` as `make run` starts it (own process group)."""
    return procs.spawn([sys.executable, "-m", "uvicorn", "mangaassist.asgi_events:application", "--host", "127.0.0.1",
                        "--port", str(port), "--lifespan", "on", "--no-access-log",
                        "--timeout-graceful-shutdown", "1"], log, cwd=ROOT, env=env)


def sse_health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/events/health", timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def sse_wait_ready(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise procs.StackError(f"the SSE server exited with code {proc.returncode}")
        if sse_health(port) is not None:
            return
        time.sleep(0.2)
    raise procs.StackError(f"the SSE server did not answer within {timeout:.0f}s")


# --- the client -------------------------------------------------------------------------------------

async def open_stream(port: int, path: str, cookie: str, on_subscribed: Callable[[], None],
                      on_event: Callable[[str, dict, float], None]) -> None:
    """One EventSource-like stream: ``on_subscribed()`` once the server says so, then
    ``on_event(kind, data, arrival time.time())`` per event. Returns when the server ends it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
                     f"Cookie: {cookie}\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        if b" 200 " not in status:
            raise RuntimeError(f"{path}: {status.decode(errors='replace').strip()}")
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        kind = ""
        while True:
            line = await reader.readline()  # chunk-size lines and SSE lines alike; one frame per chunk
            if not line:
                return
            if line.startswith(b"event: "):
                kind = line[7:].strip().decode()
            elif line.startswith(b"data: "):
                arrived = time.time()
                try:
                    data = json.loads(line[6:])
                except ValueError:
                    data = {}
                on_event(kind or "message", data, arrived)
                kind = ""
            elif b": subscribed" in line:
                on_subscribed()
    finally:
        writer.close()


async def _hold(spec: dict) -> None:
    """``hold``: open spec["paths"], say when all are subscribed, wait for a line on stdin, close
    them and print every ``turn`` arrival as [path index, session id, seq, at_ms, arrival time]."""
    port, cookie, paths = spec["port"], spec["cookie"], spec["paths"]
    loop = asyncio.get_running_loop()
    all_in = asyncio.Event()
    subscribed = [0]
    arrivals: list[list] = []
    kinds: dict[str, int] = {}

    def on_subscribed() -> None:
        subscribed[0] += 1
        if subscribed[0] == len(paths):
            all_in.set()

    def recorder(index: int):
        def on_event(kind: str, data: dict, arrived: float) -> None:
            kinds[kind] = kinds.get(kind, 0) + 1
            if kind == "turn":
                arrivals.append([index, data.get("session_id"), data.get("seq"), data.get("at_ms"), arrived])
        return on_event

    started = time.monotonic()
    tasks = [asyncio.create_task(open_stream(port, p, cookie, on_subscribed, recorder(i))) for i, p in enumerate(paths)]
    done = asyncio.create_task(all_in.wait())
    await asyncio.wait([done, *tasks], timeout=spec.get("timeout", 60), return_when=asyncio.FIRST_COMPLETED)
    failed = [repr(t.exception()) for t in tasks if t.done() and not t.cancelled() and t.exception()]
    print(json.dumps({"subscribed": subscribed[0], "connect_s": round(time.monotonic() - started, 3),
                      "errors": failed[:5]}), flush=True)
    if all_in.is_set():
        await loop.run_in_executor(None, sys.stdin.readline)  # the bench: "close"
    ended = sum(1 for t in tasks if t.done())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    done.cancel()
    print(json.dumps({"arrivals": arrivals, "kinds": kinds, "ended_early": ended}), flush=True)


def hold_main() -> int:
    asyncio.run(_hold(json.loads(sys.stdin.readline())))
    return 0


# --- the standalone probe ---------------------------------------------------------------------------

async def run(args, port: int, cookie: str, proc: subprocess.Popen) -> dict:
    from sessions_app.realtime import change_events_publish

    subscribed, counter, arrivals = asyncio.Event(), [0], []
    sessions = [f"bench-s{i}" for i in range(args.sessions)]
    paths = stream_paths(args.streams, sessions)

    def on_subscribed() -> None:
        counter[0] += 1
        if counter[0] == len(paths):
            subscribed.set()

    def on_event(kind: str, data: dict, arrived: float) -> None:
        if "id" in data:
            arrivals.append((data["id"], arrived))

    rss_before = rss_mib(proc.pid)
    tasks = [asyncio.create_task(open_stream(port, p, cookie, on_subscribed, on_event)) for p in paths]
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
    activity = sum(1 for p in paths if p == ACTIVITY)
    per_session = (len(paths) - activity) / len(sessions)
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
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["hold"]:
        return hold_main()
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
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)
        cookie = viewer_cookie()
        proc = sse_server_spawn(sse_port, work / "sse.log", env)
        sse_wait_ready(sse_port, proc, timeout=30)
        result = asyncio.run(run(args, sse_port, cookie, proc))
        print(json.dumps(result, indent=2))
    finally:
        if proc is not None:
            procs.stop(proc)
        procs.stop(redis)
    return 0


if __name__ == "__main__":
    sys.exit(main())
