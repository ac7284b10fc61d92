"""The live-updates (SSE) server's ASGI application: ``uvicorn mangaassist.asgi_events:application``.

A process of its own, not the gunicorn workers (sessions_app/live). Its own settings, read from
the environment here rather than in settings.py because only this process uses them:

- ``SSE_CONSOLE_ORIGINS``: the console origins allowed to open a stream cross-origin, with
  credentials (comma-separated, e.g. ``http://127.0.0.1:8000``; `make run` sets it). Empty: same
  origin only — production, where a load-balancer rule sends ``/events/`` to this process.
- ``SSE_MAX_STREAMS`` (1000): open streams per process; more are refused with 503.
- ``SSE_MAX_LIFETIME_SECONDS`` (600): a stream then ends and the browser reconnects (and is
  authorized again) with ``Last-Event-ID``.
- ``SSE_WRITE_TIMEOUT_SECONDS`` (10): a client that takes no write for that long is dropped.
- ``SSE_RETRY_MS`` (3000): the reconnect delay the stream asks the browser for.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mangaassist.settings")
django.setup()

from mangaassist.env import env_float, env_int, env_list  # noqa: E402
from sessions_app.live import events_application  # noqa: E402

application = events_application(
    console_origins=env_list("SSE_CONSOLE_ORIGINS", []),
    max_streams=env_int("SSE_MAX_STREAMS", 1000, minimum=1),
    max_lifetime=env_float("SSE_MAX_LIFETIME_SECONDS", 600.0, minimum=5.0),
    write_timeout=env_float("SSE_WRITE_TIMEOUT_SECONDS", 10.0, minimum=0.5),
    retry_ms=env_int("SSE_RETRY_MS", 3000, minimum=100),
)
