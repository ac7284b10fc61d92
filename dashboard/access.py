"""Who may see and do what in the console.

Two permissions (declared on ``AuditLog``): ``view_chat_sessions`` for reading, and
``operate_chat_sessions`` for actions. Staff get them through the Viewer / Supervisor groups
(migration 0002). Anonymous users are sent to the login page; logged-in users without the
permission get 403 — never a redirect loop to a login they already passed.
"""

from __future__ import annotations

import functools
import logging

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from sessions_app.exceptions import InvalidCursor, InvalidInput, MangaAssistError, SessionNotFound
from sessions_app.services.staff import audit_record

VIEW = "sessions_app.view_chat_sessions"
OPERATE = "sessions_app.operate_chat_sessions"

log = logging.getLogger(__name__)


def staff_allowed(*, user, perm: str, obj: object | None = None) -> bool:
    """The one policy check, called with the object a view is about to show or change.

    Staff status is required on top of the permission, so a deactivated or demoted account loses
    console access even if a group still grants the permission. Views call it again with the
    loaded session (or customer id), so a rule about particular sessions (e.g. a legal hold) has
    one place to live; today every session is governed by the model permission alone, because
    Django's ModelBackend answers ``has_perm(perm, obj)`` with False for every object.
    """
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return user.has_perm(perm)


def object_check(request: HttpRequest, *, perm: str, obj: object, session_id: str = "", customer_id: str = "") -> None:
    """Raise 403 (and audit the refusal of an action) if the user may not use ``obj``."""
    if not staff_allowed(user=request.user, perm=perm, obj=obj):
        if perm == OPERATE:
            audit_record(actor=request.user, action=request.resolver_match.url_name or "action", outcome="denied",
                         session_id=session_id, customer_id=customer_id)
        raise PermissionDenied


def console_view(perm: str):
    """Login + permission gate and the mapping of the project's exceptions to error pages."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not staff_allowed(user=request.user, perm=perm):
                if perm == OPERATE:
                    audit_record(actor=request.user, action=request.resolver_match.url_name or "action",
                                 outcome="denied", session_id=kwargs.get("session_id", ""),
                                 customer_id=kwargs.get("customer_id", ""))
                raise PermissionDenied
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
