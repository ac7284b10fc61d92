"""`make run`: the whole local stack in one terminal, supervised, stopped together with Ctrl-C.

DynamoDB Local (data kept under the local dir), Redis (reused if one answers at REDIS_URL), the
local DAX cluster (a leader and two replicas) in front of DynamoDB Local, the change-feed consumer (``manage.py stream_consume``,
unless DYNAMODB_STREAM is off), a Celery worker and beat, the live-updates (SSE) server (uvicorn on
SSE_PORT, PORT+2 by default) and gunicorn serving Django.
Migrations, the DynamoDB table (and its stream), a staff superuser and demo data are set up on the way.

A child that crashes is restarted with backoff (devtools.supervisor) while the rest keeps serving
— the product works without Redis or DAX for the seconds they are away. Only Ctrl-C or SIGTERM
stops everything. Everything runs on the ports and in the directory the environment names
(PORT, SSE_PORT, DYNAMODB_ENDPOINT, REDIS_URL, DAX_PORT, DAX_STATS_PORT, DAX_CLUSTER_SIZE, MANGAASSIST_LOCAL_DIR), so a second
stack (the tests start one) never touches the first.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
import urllib.request
from functools import partial
from pathlib import Path
from urllib.parse import urlparse

from devtools import procs
from devtools.supervisor import Child, Supervisor
from mangaassist.env import env_bool, file_secret

ROOT = procs.ROOT
PY = sys.executable


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MANGAASSIST_ENV", "local")
    env.setdefault("MANGAASSIST_LOCAL_DIR", str(procs.LOCAL_DIR))
    env.setdefault("DYNAMODB_ENDPOINT", "http://127.0.0.1:8100")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
    env.setdefault("AWS_ACCESS_KEY_ID", "local")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    env.setdefault("AWS_REGION", "us-east-1")
    env.setdefault("DAX_PORT", "8111")
    env.setdefault("DAX_STATS_PORT", str(int(env["DAX_PORT"]) + 1))
    env.setdefault("PORT", "8000")
    # The live-updates (SSE) server: its own process on its own port (sessions_app/live). The
    # console's pages connect to it cross-origin (SSE_ORIGIN, in the Django process's settings and
    # its CSP), with the session cookie (cookies are per host, not per port: open the console on
    # the host SSE_ORIGIN names); it lets the console's origins in (SSE_CONSOLE_ORIGINS, CORS).
    env.setdefault("SSE_PORT", str(int(env["PORT"]) + 2))
    env.setdefault("SSE_ORIGIN", f"http://127.0.0.1:{env['SSE_PORT']}")
    env.setdefault("SSE_CONSOLE_ORIGINS", f"http://127.0.0.1:{env['PORT']},http://localhost:{env['PORT']}")
    # With no DAX_ENDPOINTS given, `make run` starts the local DAX node and reads through it.
    env["_START_DAX_NODE"] = "1" if "DAX_ENDPOINTS" not in env else ""
    if "DAX_ENDPOINTS" not in env:
        env["DAX_ENDPOINTS"] = f"127.0.0.1:{env['DAX_PORT']}"
        env.setdefault("DAX_STATS_URL", f"http://127.0.0.1:{env['DAX_STATS_PORT']}/stats")
    # Every process of the stack adds its metrics to the same directory, so /metrics and the
    # console's overview see them all (docs/operating.md); main() empties it at each start.
    env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(Path(env["MANGAASSIST_LOCAL_DIR"]) / "metrics"))
    # /metrics is off without a token (404); the local stack has one, generated once per checkout.
    if "METRICS_TOKEN" not in env:
        env["METRICS_TOKEN"] = file_secret(Path(env["MANGAASSIST_LOCAL_DIR"]) / "metrics-token")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _manage(env: dict, *args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True)


def _redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


def _superuser(env: dict) -> None:
    env = dict(env)
    if env.get("DJANGO_SUPERUSER_USERNAME") and env.get("DJANGO_SUPERUSER_PASSWORD"):
        env.setdefault("DJANGO_SUPERUSER_EMAIL", f"{env['DJANGO_SUPERUSER_USERNAME']}@example.com")
        result = subprocess.run([PY, "manage.py", "createsuperuser", "--noinput"], cwd=ROOT, env=env,
                                capture_output=True, text=True)
        if result.returncode == 0:
            _say(f"superuser {env['DJANGO_SUPERUSER_USERNAME']} created")
        elif "already taken" in result.stderr:
            _say(f"superuser {env['DJANGO_SUPERUSER_USERNAME']} exists")
        else:
            sys.stderr.write(result.stderr)
            raise SystemExit("creating the superuser failed")
        return
    check = subprocess.run(
        [PY, "manage.py", "shell", "--no-imports", "-c",
         "from django.contrib.auth import get_user_model as g; print(g().objects.filter(is_superuser=True).exists())"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    if check.stdout.strip().splitlines()[-1:] == ["True"]:
        _say("a superuser exists (set DJANGO_SUPERUSER_USERNAME/PASSWORD to create another)")
        return
    password = secrets.token_urlsafe(12)
    env.update(DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_PASSWORD=password,
               DJANGO_SUPERUSER_EMAIL="admin@example.com")
    subprocess.run([PY, "manage.py", "createsuperuser", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True)
    _say(f"superuser created — username: admin  password: {password}  (shown once)")


def _wait_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise procs.StackError(f"{proc.args[0]} exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    raise procs.StackError(f"{url} did not answer within {timeout:.0f}s")


def _spawn_marked(args: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """procs.spawn, remembering where this run's output starts in the (appended-to) log."""
    offset = log.stat().st_size if log.exists() else 0
    proc = procs.spawn(args, log, **kwargs)
    proc.log_path, proc.log_offset = log, offset
    return proc


def _log_ready(marker: str, timeout: float):
    """Ready once ``marker`` appears in what this run of the process wrote to its log."""

    def ready(proc: subprocess.Popen) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with open(proc.log_path, "rb") as fh:
                    fh.seek(proc.log_offset)
                    if marker.encode() in fh.read():
                        return
            except OSError:
                pass
            if proc.poll() is not None:
                raise procs.StackError(f"{proc.args[2]} exited with code {proc.returncode}; see {_shown(proc.log_path)}")
            time.sleep(0.2)
        raise procs.StackError(f"{proc.args[2]} did not start within {timeout:.0f}s; see {_shown(proc.log_path)}")

    return ready


def _fresh_metrics_dir(path: Path) -> None:
    """prometheus-client's multiprocess files belong to one run of the stack: files left by an
    earlier run's processes would add their old totals to this run's (its docs: wipe the
    directory between runs)."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def _port_ready(port: int, name: str, timeout: float):
    return lambda proc: procs.wait_for_port("127.0.0.1", port, timeout=timeout, proc=proc, name=name)


def _dynamodb_ready(port: int, db_path: Path):
    def ready(proc) -> None:
        procs.wait_for_port("127.0.0.1", port, timeout=60, proc=proc, name="DynamoDB Local")
        procs.dynamodb_local_index_streams(port, db_path)  # also after a restart: IF NOT EXISTS
    return ready


def run_started(value: str | None) -> float:
    """When this ``make run`` began, in epoch seconds: ``MANGAASSIST_RUN_STARTED``, which the
    Makefile's ``run`` target takes before its bootstrap (minutes on a fresh machine), so "ready
    in" is the wait the person at the terminal had. Run directly (``python -m devtools.run``), or
    with a value that cannot be this run's (unparsable, in the future, or older than a day: left
    exported in a shell), it is now."""
    now = time.time()
    try:
        started = float(value or "")
    except ValueError:
        return now
    return started if 0 <= now - started < 86400 else now


def main() -> int:
    # Popped: the stack's children (and a `make run` started from one of them) must not inherit it.
    started_at = run_started(os.environ.pop("MANGAASSIST_RUN_STARTED", None))
    env = _env()
    os.environ.update(env)  # every child (DAX node, workers, gunicorn) gets the same configuration
    local = Path(env["MANGAASSIST_LOCAL_DIR"]).resolve()
    logs = local / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    _fresh_metrics_dir(Path(env["PROMETHEUS_MULTIPROC_DIR"]))
    supervisor = Supervisor(say=_say, state_file=local / "run" / "children.json")
    supervisor.install_signal_handlers()
    try:
        ddb = urlparse(env["DYNAMODB_ENDPOINT"])
        if procs.port_open(ddb.hostname, ddb.port):
            _say(f"DynamoDB: reusing the server at {env['DYNAMODB_ENDPOINT']}")
        else:
            _say(f"starting DynamoDB Local on port {ddb.port} (data in {_shown(local / 'dynamodb-data')})")
            supervisor.start(Child("DynamoDB Local", partial(
                procs.spawn_dynamodb_local, ddb.port, db_path=local / "dynamodb-data", log=logs / "dynamodb.log"),
                _dynamodb_ready(ddb.port, local / "dynamodb-data")))

        redis_url = urlparse(env["REDIS_URL"])
        if _redis_answers(env["REDIS_URL"]):
            _say(f"Redis: reusing the server at {env['REDIS_URL']} (not supervised)")
        elif redis_url.hostname in ("127.0.0.1", "localhost"):
            port = redis_url.port or 6379
            _say(f"starting redis-server on port {port}")
            supervisor.start(Child("redis-server", partial(procs.spawn_redis, port, log=logs / "redis.log"),
                                   _port_ready(port, "redis-server", 20)))
        else:
            raise procs.StackError(f"no Redis answers at {env['REDIS_URL']}")

        if env["_START_DAX_NODE"]:
            from devtools.dax import spawn_dax_cluster, wait_for_dax_node

            port, stats_port = int(env["DAX_PORT"]), int(env["DAX_STATS_PORT"])
            size = int(env.get("DAX_CLUSTER_SIZE", "3"))
            # A leader and two replicas by default, as a DAX cluster runs in production: the
            # cluster's own supervisor restarts a node that dies (it rejoins as a replica); the
            # app's seed is node 1, from which the client learns the others (docs/dax-protocol.md §Cluster).
            _say(f"starting a {size}-node local DAX cluster (node 1 on port {port}, stats on {stats_port})")
            supervisor.start(Child("DAX cluster", partial(
                spawn_dax_cluster, port, size=size, dynamodb_endpoint=env["DYNAMODB_ENDPOINT"],
                stats_port=stats_port, log=logs / "dax.log",
                # Clients cache attribute-list ids for life: keep them valid across node restarts.
                extra_args=["--registry-file", str(local / "dax-registry.jsonl")]),
                lambda proc: wait_for_dax_node(proc, port, stats_port=stats_port)))

        _say("migrating the Django database")
        _manage(env, "migrate", "--noinput", "-v", "0")
        _manage(env, "dynamodb_init")
        _superuser(env)
        if env_bool("DEMO_DATA", True):
            _manage(env, "seed_demo")

        if env_bool("DYNAMODB_STREAM", True):
            # After dynamodb_init (which enabled the stream and made the lease table). SIGTERM from
            # stop_all: it finishes the batch in hand, checkpoints and releases its leases; it is
            # stopped before DynamoDB Local (children stop in reverse order).
            _say("starting the stream consumer (change feed)")
            supervisor.start(Child("stream consumer", partial(
                _spawn_marked, [PY, "manage.py", "stream_consume"], logs / "stream-consumer.log", cwd=ROOT, env=env),
                _log_ready(" reading arn:", timeout=60)))
        else:
            _say("DYNAMODB_STREAM is off: no stream consumer")

        _say("starting Celery worker and beat")
        supervisor.start(Child("celery worker", partial(
            procs.spawn, [PY, "-m", "celery", "-A", "mangaassist", "worker", "--loglevel", "INFO", "--concurrency", "2"],
            logs / "celery-worker.log", cwd=ROOT, env=env)))
        supervisor.start(Child("celery beat", partial(
            procs.spawn, [PY, "-m", "celery", "-A", "mangaassist", "beat", "--loglevel", "INFO",
                          "--schedule", str(local / "celerybeat-schedule")],
            logs / "celery-beat.log", cwd=ROOT, env=env)))

        sse_port = env["SSE_PORT"]
        _say(f"starting the live-updates (SSE) server on http://127.0.0.1:{sse_port}/events/")
        # uvicorn, not a gunicorn worker: an open stream lasts as long as a page is open. SIGTERM
        # from stop_all: open streams get 3 s to end (browsers reconnect to the next server).
        supervisor.start(Child("SSE server", partial(
            procs.spawn, [PY, "-m", "uvicorn", "mangaassist.asgi_events:application", "--host", "127.0.0.1",
                          "--port", sse_port, "--lifespan", "on", "--timeout-graceful-shutdown", "3",
                          "--no-access-log"],
            logs / "sse.log", cwd=ROOT, env=env),
            lambda proc: _wait_http(f"http://127.0.0.1:{sse_port}/events/health", timeout=60, proc=proc)))

        port = env["PORT"]
        _say(f"starting gunicorn on http://127.0.0.1:{port}")
        supervisor.start(Child("gunicorn", partial(
            procs.spawn, [PY, "-m", "gunicorn", "mangaassist.wsgi:application", "-c", "python:mangaassist.gunicorn_conf",
                          "--bind", f"127.0.0.1:{port}",
                          "--workers", env.get("WEB_CONCURRENCY", "3"), "--access-logfile", "-", "--timeout", "30"],
            logs / "gunicorn.log", cwd=ROOT, env=env),
            lambda proc: _wait_http(f"http://127.0.0.1:{port}/accounts/login/", timeout=60, proc=proc)))
        _say(f"ready in {time.time() - started_at:.1f}s — console: http://127.0.0.1:{port}/  "
             f"admin: http://127.0.0.1:{port}/admin/  API: http://127.0.0.1:{port}/api/v1/docs  "
             f"live updates: {env['SSE_ORIGIN'] or 'same origin'}/events/")
        if env.get("METRICS_TOKEN"):
            _say(f"metrics: curl -H 'Authorization: Bearer {env['METRICS_TOKEN']}' http://127.0.0.1:{port}/metrics  "
                 f"health: http://127.0.0.1:{port}/readyz")
        _say(f"logs in {_shown(logs)}/ — a crashed process is restarted; Ctrl-C stops everything started here")
        supervisor.run_forever()
    except KeyboardInterrupt:
        _say("shutting down")
        return 0
    except (procs.StackError, subprocess.CalledProcessError) as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        supervisor.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
