"""Who may open a stream: the console's own rule, from the Django session cookie.

The page's session cookie is sent with the EventSource request (same origin, or cross-origin with
``withCredentials``: cookies are per host, not per port, so `make run`'s SSE port gets them). The
session is read with the configured ``SESSION_ENGINE`` and the user with ``auth.get_user`` — the
same code ``AuthenticationMiddleware`` runs, so a session invalidated by a password change is
refused here too — and then ``access.staff_allowed(perm=VIEW)``, the console's one policy check.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.db import close_old_connections
from django.http.cookie import parse_cookie

from sessions_app.access import VIEW, staff_allowed


def session_key_from_cookies(cookie_header: str) -> str:
    return parse_cookie(cookie_header).get(settings.SESSION_COOKIE_NAME, "")


def _viewer_allowed_sync(session_key: str) -> bool:
    if not session_key:
        return False
    # What Django does around every request: drop a connection past CONN_MAX_AGE or broken.
    close_old_connections()
    try:
        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
        user = auth.get_user(SimpleNamespace(session=store))
        return staff_allowed(user=user, perm=VIEW)
    finally:
        close_old_connections()


# thread_sensitive: every check runs on one shared thread, so the ORM keeps one database
# connection for the process instead of one per pool thread; a check is a couple of small
# queries, a connect happens once per stream.
viewer_allowed = sync_to_async(_viewer_allowed_sync, thread_sensitive=True)
