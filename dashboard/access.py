"""The console's view gate on top of ``sessions_app.access`` (the policy), and the mapping of
the project's exceptions to error pages.

Anonymous users are sent to the login page; logged-in users the policy refuses get 403 — never
a redirect loop to a login they already passed. A logged-in account with no console role at all
(no ``view_chat_sessions``: in none of Viewer, Agent, Supervisor) gets the "no console role yet"
page, 403, with a log-out button.

The project's error handlers (``handler400/403/404/500`` in mangaassist/urls.py) are here too: the
console's layout with its navigation and log-out, never Django's debug pages in production. Under
``/api/`` 400 and 500 answer in the API's error shape. The 500 page is rendered without context
processors (no database, no session: whatever failed may be one of them), and a plain page of its
own if even that fails.
"""

from __future__ import annotations

import functools
import logging

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseServerError, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template import loader

from sessions_app.access import OPERATE, VIEW, staff_allowed, staff_require
from sessions_app.api.errors import bad_request as api_bad_request
from sessions_app.api.errors import error_body, is_api_path
from sessions_app.exceptions import InvalidCursor, InvalidInput, MangaAssistError, SessionNotFound

__all__ = ["OPERATE", "VIEW", "bad_request", "console_view", "page_not_found", "permission_denied", "server_error"]

log = logging.getLogger(__name__)


def console_view(perm: str):
    """Login + permission gate and the mapping of the project's exceptions to error pages."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            try:
                staff_require(user=request.user, perm=perm, action=request.resolver_match.url_name or "action",
                              session_id=kwargs.get("session_id", ""), customer_id=kwargs.get("customer_id", ""))
            except PermissionDenied as exc:
                return permission_denied(request, exc)
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


# --- the project's error handlers (mangaassist/urls.py) -------------------------------------------

NO_ROLE_MESSAGE = "Your account has no console role yet: ask a Supervisor to add you to Viewer, Agent or Supervisor."


def has_console_role(user) -> bool:
    """Whether the account may read the console at all (Viewer, Agent or Supervisor)."""
    return staff_allowed(user=user, perm=VIEW)


def _error_page(request: HttpRequest, template: str, context: dict, *, status: int) -> HttpResponse:
    """The page with the request's context (the user's navigation and log-out); if that cannot
    be built — the session store or DynamoDB failing under the page's count — the same page
    without context processors, rather than a 500 for a 403 or 404."""
    try:
        return render(request, template, context, status=status)
    except Exception:  # noqa: BLE001 - an error page must not fail for what its layout reads
        log.warning("the %s page could not be rendered with its context", status, exc_info=True)
        bare = {**context, "csrf_token": get_token(request), "always_logout": True}
        return HttpResponse(loader.get_template(template).render(bare), status=status)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """403: a logged-in account without any console role gets the page that says so; anyone else
    the console's 403 page (this needs a role they do not have)."""
    user = getattr(request, "user", None)
    no_role = user is not None and user.is_authenticated and not has_console_role(user)
    if getattr(request, "htmx", False):  # a panel's refresh: the message in the panel
        message = NO_ROLE_MESSAGE if no_role else "You do not have the permission this needs."
        return _error_page(request, "dashboard/partials/error.html", {"status": 403, "error": {"message": message}},
                           status=403)
    if no_role:
        return _error_page(request, "dashboard/no_group.html", {"status": 403, "message": NO_ROLE_MESSAGE}, status=403)
    return _error_page(request, "403.html", {"status": 403}, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _error_page(request, "404.html", {"status": 404, "request_path": request.path}, status=404)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """400 before any view ran (a Host not allowed, a malformed request): the API's shape under
    /api/, else the console's page — with its context when it can be built (the failure may be the
    request itself), a page without it otherwise."""
    if is_api_path(request.path):
        return api_bad_request(request, exception)
    return _error_page(request, "400.html", {"status": 400}, status=400)


# The last resort: no template, no URL resolving, no static-files storage.
_BARE_500 = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Server error · MangaAssist</title>
</head><body><header class="topbar"><a class="brand" href="/">MangaAssist Console</a></header><main>
<h1>Something went wrong on our side (500)</h1><p>The error has been logged. Try again in a moment.</p>
<p><a href="/">Overview</a> · <a href="/sessions/">Sessions</a> · <a href="/accounts/login/">Log in again</a></p>
</main></body></html>"""


def server_error(request: HttpRequest) -> HttpResponse:
    """500: the API's shape under /api/; else ``500.html`` rendered without context processors
    (only the CSRF token, so its log-out button works), and a fixed page if that fails too."""
    if is_api_path(request.path):
        return JsonResponse(error_body(code="internal_error", message="internal error"), status=500)
    try:
        page = loader.get_template("500.html").render({"status": 500, "csrf_token": get_token(request)})
    except Exception:  # noqa: BLE001 - the error page must never fail
        log.exception("the 500 page could not be rendered")
        page = _BARE_500
    return HttpResponseServerError(page)
