"""Live updates of the console: Server-Sent Events from the change feed, in a process of its own.

``GET /events/sessions/<id>`` (one session's events) and ``GET /events/activity`` (every
session's) stream the change feed's Redis pub/sub events (``realtime.events``) as
``text/event-stream``. A small ASGI callable, not Django views: see ``app.py`` for why. It is
served by uvicorn (``mangaassist.asgi_events``), never by the sync gunicorn workers, because an
open stream would hold a worker for as long as a page is open.
"""

from .app import EventsApp, events_application

__all__ = ["EventsApp", "events_application"]
