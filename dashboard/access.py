"""The console's view gate on top of ``sessions_app.access`` (the policy), and the mapping of
the project's exceptions to error pages.

Anonymous users are sent to the login page; logged-in users the policy refuses get 403 — never
a redirect loop to a login they already passed.
"""

from __future__ import annotations

import functools
import logging

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sessions_app.access import OPERATE, VIEW, staff_require
from sessions_app.exceptions import InvalidCursor, InvalidInput, MangaAssistError, SessionNotFound

__all__ = ["OPERATE", "VIEW", "console_view"]

log = logging.getLogger(__name__)


def console_view(perm: str):
    """Login + permission gate and the mapping of the project's exceptions to error pages."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            staff_require(user=request.user, perm=perm, action=request.resolver_match.url_name or "action",
                          session_id=kwargs.get("session_id", ""), customer_id=kwargs.get("customer_id", ""))
            try:
                return view(request, *args, **kwargs)
            except SessionNotFound as exc:
                return _error(request, exc, status=404)
            except (InvalidCursor, InvalidInput) as exc:
                return _error(request, exc, status=400)
            except MangaAssistError as exc:
                log.warning("console view failed: %s", exc)
                return _error(request, exc, status=exc.http_status)

        return wrapper

    return decorate


def _error(request: HttpRequest, exc: MangaAssistError, *, status: int) -> HttpResponse:
    template = "dashboard/partials/error.html" if request.htmx else "dashboard/error.html"
    return render(request, template, {"error": exc, "status": status}, status=status)
