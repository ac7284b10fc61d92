"""`make run`: the whole local stack in one terminal, stopped together with Ctrl-C.

DynamoDB Local (data kept under .local/), Redis (reused if one answers at REDIS_URL), the local
DAX node in front of DynamoDB Local, a Celery worker and beat, and gunicorn serving Django.
Migrations, the DynamoDB table, a staff superuser and demo data are set up on the way.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlparse

from devtools import procs

ROOT = procs.ROOT
LOGS = procs.LOCAL_DIR / "logs"
PY = sys.executable


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("MANGAASSIST_ENV", "local")
    env.setdefault("DYNAMODB_ENDPOINT", "http://127.0.0.1:8100")
    env.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    env.setdefault("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
    env.setdefault("AWS_ACCESS_KEY_ID", "local")
    env.setdefault("AWS_SECRET_ACCESS_KEY", "local")
    env.setdefault("AWS_REGION", "us-east-1")
    env.setdefault("DAX_PORT", "8111")
    env.setdefault("PORT", "8000")
    # With no DAX_ENDPOINTS given, `make run` starts the local DAX node and reads through it.
    env["_START_DAX_NODE"] = "1" if "DAX_ENDPOINTS" not in env else ""
    if "DAX_ENDPOINTS" not in env:
        env["DAX_ENDPOINTS"] = f"127.0.0.1:{env['DAX_PORT']}"
        env.setdefault("DAX_STATS_URL", f"http://127.0.0.1:{int(env['DAX_PORT']) + 1}/stats")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _say(message: str) -> None:
    print(f"[make run] {message}", flush=True)


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


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status < 500:
                    return
        except OSError:
            time.sleep(0.2)
    raise procs.StackError(f"{url} did not answer within {timeout:.0f}s")


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops the stack the same way Ctrl-C does


def main() -> int:
    started_at = time.monotonic()
    LOGS.mkdir(parents=True, exist_ok=True)
    env = _env()
    os.environ.update(env)  # every child (DAX node, workers, gunicorn) gets the same configuration
    started: list[tuple[str, subprocess.Popen]] = []

    def stop_all():
        for name, proc in reversed(started):
            _say(f"stopping {name}")
            procs.stop(proc)
        started.clear()

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        ddb = urlparse(env["DYNAMODB_ENDPOINT"])
        if procs.port_open(ddb.hostname, ddb.port):
            _say(f"DynamoDB: reusing the server at {env['DYNAMODB_ENDPOINT']}")
        else:
            _say(f"starting DynamoDB Local on port {ddb.port} (data in .local/dynamodb-data)")
            started.append(("DynamoDB Local", procs.start_dynamodb_local(
                ddb.port, db_path=procs.LOCAL_DIR / "dynamodb-data", log=LOGS / "dynamodb.log")))

        redis_url = urlparse(env["REDIS_URL"])
        if _redis_answers(env["REDIS_URL"]):
            _say(f"Redis: reusing the server at {env['REDIS_URL']}")
        elif redis_url.hostname in ("127.0.0.1", "localhost"):
            _say(f"starting redis-server on port {redis_url.port or 6379}")
            started.append(("redis-server", procs.start_redis(redis_url.port or 6379, log=LOGS / "redis.log")))
        else:
            raise procs.StackError(f"no Redis answers at {env['REDIS_URL']}")

        if env["_START_DAX_NODE"]:
            from devtools.dax import start_dax_node

            port = int(env["DAX_PORT"])
            _say(f"starting the local DAX node on port {port} (stats on {port + 1})")
            started.append(("DAX node", start_dax_node(
                port, dynamodb_endpoint=env["DYNAMODB_ENDPOINT"], stats_port=port + 1, log=LOGS / "dax.log",
                # Clients cache attribute-list ids for life: keep them valid across node restarts.
                extra_args=["--registry-file", str(procs.LOCAL_DIR / "dax-registry.jsonl")])))

        _say("migrating the Django database")
        _manage(env, "migrate", "--noinput", "-v", "0")
        _manage(env, "dynamodb_init")
        _superuser(env)
        _manage(env, "seed_demo")

        _say("starting Celery worker and beat")
        started.append(("celery worker", procs.spawn(
            [PY, "-m", "celery", "-A", "mangaassist", "worker", "--loglevel", "INFO", "--concurrency", "2"],
            LOGS / "celery-worker.log", cwd=ROOT, env=env)))
        started.append(("celery beat", procs.spawn(
            [PY, "-m", "celery", "-A", "mangaassist", "beat", "--loglevel", "INFO",
             "--schedule", str(procs.LOCAL_DIR / "celerybeat-schedule")],
            LOGS / "celery-beat.log", cwd=ROOT, env=env)))

        port = env["PORT"]
        _say(f"starting gunicorn on http://127.0.0.1:{port}")
        started.append(("gunicorn", procs.spawn(
            [PY, "-m", "gunicorn", "mangaassist.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", env.get("WEB_CONCURRENCY", "3"), "--access-logfile", "-", "--timeout", "30"],
            LOGS / "gunicorn.log", cwd=ROOT, env=env)))
        _wait_http(f"http://127.0.0.1:{port}/accounts/login/", timeout=60)
        _say(f"ready in {time.monotonic() - started_at:.1f}s — console: http://127.0.0.1:{port}/  "
             f"admin: http://127.0.0.1:{port}/admin/  API: http://127.0.0.1:{port}/api/v1/docs")
        _say(f"logs in {LOGS.relative_to(ROOT)}/ — Ctrl-C stops everything started here")
        while True:
            for name, proc in started:
                if proc.poll() is not None:
                    raise procs.StackError(f"{name} exited with code {proc.returncode}; see {LOGS.relative_to(ROOT)}/")
            time.sleep(1)
    except KeyboardInterrupt:
        _say("shutting down")
        return 0
    except (procs.StackError, subprocess.CalledProcessError) as exc:
        _say(f"error: {exc}")
        return 1
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main())
