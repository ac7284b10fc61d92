"""`make run` (devtools.run) supervises its children: a crashed child is restarted with backoff
and the rest of the stack keeps serving; only SIGTERM (or Ctrl-C) stops everything, leaving no
process behind. The real supervisor, on free ports and a temporary data directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import redis
from celery import Celery

from devtools import procs

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Settings the stack would otherwise take from this test session's environment.
FOREIGN = ("DJANGO_", "MANGAASSIST_", "DAX_", "REDIS_", "CELERY_", "DYNAMODB_", "DATABASE_", "PORT", "WEB_CONCURRENCY",
           "DEMO_DATA")


def _free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        port = procs.free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _wait_for(condition, *, timeout: float, what, every=None):
    """Poll ``condition`` until it returns something truthy; ``every`` runs on each poll too.
    ``what`` (a string, or a callable giving one) describes the wait in the failure."""
    deadline = time.monotonic() + timeout
    while True:
        if every is not None:
            every()
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what() if callable(what) else what}")
        time.sleep(0.2)


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), fields[0], int(fields[19])


def _alive(pid: int, started: int | None = None) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[1] != "Z" and (started is None or stat[2] == started)


def _descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: pid → start time (to tell a reused pid apart)."""
    children: dict[int, list[int]] = {}
    starts = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) and stat[1] != "Z":
            children.setdefault(stat[0], []).append(int(entry.name))
            starts[int(entry.name)] = stat[2]
    found, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found[child] = starts[child]
            todo.append(child)
    return found


def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def stack(tmp_path):
    ddb, rds, dax, stats, web = _free_ports(5)
    local = tmp_path / "local"
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN)}
    env.update(
        MANGAASSIST_LOCAL_DIR=str(local), DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DYNAMODB_ENDPOINT=f"http://127.0.0.1:{ddb}", REDIS_URL=f"redis://127.0.0.1:{rds}/0",
        CELERY_BROKER_URL=f"redis://127.0.0.1:{rds}/1", DAX_PORT=str(dax), DAX_STATS_PORT=str(stats), PORT=str(web),
        WEB_CONCURRENCY="1",
        DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_PASSWORD="pw-supervisor-test-admin", DEMO_DATA="0",
    )
    out = (tmp_path / "make-run.out").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "devtools.run"], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    info = {"proc": proc, "local": local, "out": tmp_path / "make-run.out", "ports": {
        "dynamodb": ddb, "redis": rds, "dax": dax, "dax-stats": stats, "web": web}, "seen": {}}
    try:
        yield info
    finally:
        if proc.poll() is None:
            info["seen"].update(_descendants(proc.pid))
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        for pid, started in info["seen"].items():  # a failed test must not leak its stack
            if _alive(pid, started):
                os.kill(pid, signal.SIGKILL)
        out.close()


def _children(stack) -> dict[str, int | None]:
    try:
        return json.loads((stack["local"] / "run" / "children.json").read_text())["children"]
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _output(stack) -> str:
    return stack["out"].read_text(errors="replace")


def test_crashed_children_come_back_and_only_sigterm_stops_the_stack(stack, monkeypatch):
    proc, ports = stack["proc"], stack["ports"]
    web = f"http://127.0.0.1:{ports['web']}"
    _wait_for(lambda: "ready in" in _output(stack) or proc.poll() is not None, timeout=240,
              what=lambda: f"the stack to be ready:\n{_output(stack)}")
    assert proc.poll() is None, _output(stack)
    assert _http_status(web + "/api/v1/openapi.json") == 200

    names = ["redis-server", "DAX cluster", "celery worker"]
    before = _children(stack)
    assert all(before.get(name) for name in names), before
    stack["seen"].update(_descendants(proc.pid))
    for name in names:
        os.kill(before[name], signal.SIGKILL)

    answered = []

    def web_answers():
        answered.append((_http_status(web + "/api/v1/openapi.json"), _http_status(web + "/accounts/login/")))

    broker = redis.Redis(port=ports["redis"], socket_timeout=0.5, socket_connect_timeout=0.5)

    def redis_back():
        try:
            return broker.ping()
        except redis.RedisError:
            return False

    # Celery takes its broker from $CELERY_BROKER_URL before anything an app is told (and this
    # session's is the test broker); a fresh client per ping forgets the Redis that was killed.
    monkeypatch.setenv("CELERY_BROKER_URL", f"redis://127.0.0.1:{ports['redis']}/1")

    def worker_back():
        # Not set as current: a throwaway app must not become this thread's default Celery app.
        with Celery(set_as_current=False) as celery:
            try:
                return celery.control.ping(timeout=1.0)
            except Exception:  # the broker itself may still be coming back
                return False

    def all_back():
        now = _children(stack)
        return (all(now.get(n) and now[n] != before[n] and _alive(now[n]) for n in names)
                and redis_back() and procs.port_open("127.0.0.1", ports["dax"])
                and _http_status(f"http://127.0.0.1:{ports['dax-stats']}/stats") == 200 and worker_back())

    _wait_for(all_back, timeout=120, every=web_answers, what=lambda: (
        f"redis-server, the DAX cluster and the Celery worker to come back: children {_children(stack)} "
        f"(before {before}), redis {redis_back()}, worker {worker_back()}\n{_output(stack)}"))
    assert proc.poll() is None, _output(stack)
    assert answered and all(statuses == (200, 200) for statuses in answered), answered
    output = _output(stack)
    for name in names:
        assert f"{name} exited (signal SIGKILL); restarting in" in output, output
        assert f"{name} restarted" in output, output

    # SIGTERM stops everything it started: no process of the stack outlives it.
    stack["seen"].update(everything := _descendants(proc.pid))
    assert len(everything) >= 7  # DynamoDB Local, Redis, DAX, worker (+ pool), beat, gunicorn (+ worker)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    left = {pid for pid, started in everything.items() if _alive(pid, started)}
    assert not left, left
    assert not any(procs.port_open("127.0.0.1", port) for port in ports.values())
    assert "shutting down" in _output(stack)
