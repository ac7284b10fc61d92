"""The bench's own stack: DynamoDB Local, redis-server and the local DAX node on free ports
(never the ones `make run` uses), a throw-away SQLite database, and gunicorn servers.

Reuse instead of starting (e.g. a long-lived stack that keeps the 100k-session tables loaded):
``BENCH_DYNAMODB_ENDPOINT``, ``BENCH_REDIS_URL`` (keys are prefixed ``bench`` and never flushed
when reused), ``BENCH_DAX_ENDPOINT`` (host:port). ``--ddb-dir`` keeps our own DynamoDB Local's data
on disk between runs so the large data sets are loaded once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from devtools import procs
from devtools.dax import start_dax_node

from .stats import say

ROOT = procs.ROOT
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The production web server settings (README "Running in production"; `make run`): sync workers,
# WEB_CONCURRENCY of them, 30 s timeout.
WEB_CONCURRENCY = int(os.environ.get("WEB_CONCURRENCY", "3"))


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all of its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_of(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(entry))
    return out


@dataclass
class Server:
    """One gunicorn master and its workers."""

    name: str
    port: int
    proc: subprocess.Popen
    counters_dir: str | None = None
    workers: list[int] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float:
        """CPU time of every worker (the master only supervises)."""
        return sum(process_cpu_seconds(pid) for pid in self.workers)


class Stack:
    def __init__(self, *, ddb_dir: Path | None = None, keep_logs: bool = False) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="mangaassist-bench-"))
        self.ddb_dir = ddb_dir
        self.keep_logs = keep_logs
        self.started: list[tuple[str, subprocess.Popen]] = []
        self.servers: dict[str, Server] = {}
        self.reused: dict[str, str] = {}
        self.ddb_endpoint = self.redis_url = self.dax_endpoint = ""
        self.dax_stats_url: str | None = None
        self.redis_owned = False

    # --- infrastructure ------------------------------------------------------------------------

    def start(self) -> None:
        env = os.environ
        # The DAX node (a child) reads credentials from the environment like the app does.
        env.setdefault("AWS_ACCESS_KEY_ID", "local")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        env["AWS_REGION"] = env.get("AWS_REGION", "us-east-1")
        if env.get("BENCH_DYNAMODB_ENDPOINT"):
            self.ddb_endpoint = env["BENCH_DYNAMODB_ENDPOINT"]
            self.reused["dynamodb"] = self.ddb_endpoint
        else:
            port = procs.free_port()
            say(f"starting DynamoDB Local on port {port}" + (f" (data in {self.ddb_dir})" if self.ddb_dir else " (a throw-away database)"))
            self.started.append(("DynamoDB Local", self._start_dynamodb(port)))
            self.ddb_endpoint = f"http://127.0.0.1:{port}"
        if env.get("BENCH_REDIS_URL"):
            self.redis_url = env["BENCH_REDIS_URL"]
            self.reused["redis"] = self.redis_url
        else:
            port = procs.free_port()
            say(f"starting redis-server on port {port}")
            self.started.append(("redis-server", procs.start_redis(port, log=self.work / "redis.log")))
            self.redis_url = f"redis://127.0.0.1:{port}/0"
            self.redis_owned = True
        if env.get("BENCH_DAX_ENDPOINT"):
            self.dax_endpoint = env["BENCH_DAX_ENDPOINT"]
            self.reused["dax"] = self.dax_endpoint
        else:
            port, stats = procs.free_port(), procs.free_port()
            say(f"starting the local DAX node on port {port}")
            # Cache entries live for the whole run, so the DAX variant measures hits, not TTL expiry.
            self.started.append(("DAX node", start_dax_node(
                port, dynamodb_endpoint=self.ddb_endpoint, stats_port=stats, log=self.work / "dax.log",
                extra_args=["--record-ttl-millis", "3600000", "--query-ttl-millis", "3600000",
                            "--item-cache-bytes", str(512 << 20), "--query-cache-bytes", str(512 << 20),
                            "--log-level", "WARNING"])))
            self.dax_endpoint = f"127.0.0.1:{port}"
            self.dax_stats_url = f"http://127.0.0.1:{stats}/stats"
        base = self.redis_url.rsplit("/", 1)[0]
        os.environ.update({
            "MANGAASSIST_ENV": "local",
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DJANGO_DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "DATABASE_URL": f"sqlite:///{self.work / 'bench.sqlite3'}",
            # The consumers' search indexer writes here, never into `make run`'s index.
            "SEARCH_ENGINE": "sqlite",
            "SEARCH_SQLITE_PATH": str(self.work / "search.sqlite3"),
            "DYNAMODB_ENDPOINT": self.ddb_endpoint,
            "DYNAMODB_TABLE": "bench-context",
            "DAX_ENDPOINTS": "",
            "REDIS_URL": self.redis_url,
            "REDIS_KEY_PREFIX": "bench",
            "CELERY_BROKER_URL": f"{base}/1",
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "AWS_REGION": "us-east-1",
            # Appends are measured, not the limiter: a limit no benchmark reaches (scenario 5
            # measures the limiter itself, with explicit limits).
            "RATE_LIMIT_TURNS": "100000000",
        })

    def _start_dynamodb(self, port: int) -> subprocess.Popen:
        # A million turns need more than the tests' 512 MB heap.
        return procs.start_dynamodb_local(port, db_path=self.ddb_dir, log=self.work / "dynamodb.log", heap="4g")

    def django_setup(self) -> None:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)

    # --- web servers ---------------------------------------------------------------------------

    def start_server(self, name: str, *, dax: bool, table: str, counters: bool = False,
                     env: dict[str, str | None] | None = None, gunicorn_args: tuple[str, ...] = ()) -> Server:
        """A gunicorn server (production worker settings) on a free port. ``env``: extra variables
        for this server only, applied last (a value of None removes the variable); ``gunicorn_args``:
        extra command-line arguments (e.g. ``-c python:mangaassist.gunicorn_conf``)."""
        port = procs.free_port()
        extra = env or {}
        env = dict(os.environ)
        env["DAX_ENDPOINTS"] = self.dax_endpoint if dax else ""
        env["DYNAMODB_TABLE"] = table
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        counters_dir = None
        if counters:
            counters_dir = str(self.work / f"counters-{name}")
            os.makedirs(counters_dir, exist_ok=True)
            env["BENCH_COUNTERS_DIR"] = counters_dir
        args = [sys.executable, "-m", "gunicorn", "mangaassist.wsgi:application", "--bind", f"127.0.0.1:{port}",
                "--workers", str(WEB_CONCURRENCY), "--timeout", "30", "--backlog", "2048", *gunicorn_args]
        proc = procs.spawn(args, self.work / f"gunicorn-{name}.log", cwd=ROOT, env=env)
        self.started.append((f"gunicorn {name}", proc))
        server = Server(name=name, port=port, proc=proc, counters_dir=counters_dir)
        self.servers[name] = server
        return server

    def wait_servers(self, timeout: float = 90) -> None:
        for server in self.servers.values():
            deadline = time.monotonic() + timeout
            while True:
                if server.proc.poll() is not None:
                    raise procs.StackError(f"gunicorn {server.name} exited; see {self.work}/gunicorn-{server.name}.log")
                try:
                    with urllib.request.urlopen(f"{server.base}/bench/ping", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise procs.StackError(f"gunicorn {server.name} did not answer within {timeout:.0f}s")
                time.sleep(0.2)
            deadline = time.monotonic() + 20
            while len(server.workers) < WEB_CONCURRENCY and time.monotonic() < deadline:
                server.workers = children_of(server.proc.pid)
                time.sleep(0.1)

    def stop(self) -> None:
        for name, proc in reversed(self.started):
            procs.stop(proc)
        self.started.clear()
        if not self.keep_logs:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            say(f"logs kept in {self.work}")
