"""Login throttling with django-axes (settings: ``AXES_*``, from ``LOGIN_FAILURE_LIMIT``,
``LOGIN_COOLOFF_MINUTES`` and ``LOGIN_PROXY_COUNT``): the address a login attempt counts against,
and axes' database handler with one audit row for each lockout.

Both are named in settings (``AXES_CLIENT_IP_CALLABLE``, ``AXES_HANDLER``), so they work wherever
axes runs, with no signal to connect. Unlock: delete the user's or address's AccessAttempt rows in
the admin (Supervisors and superusers) or run ``manage.py axes_reset_username NAME`` /
``axes_reset_ip ADDRESS``.
"""

from __future__ import annotations

import ipaddress

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.http import HttpRequest

from .audit import audit_record


def login_client_ip(request: HttpRequest) -> str | None:
    """``REMOTE_ADDR``, or with ``LOGIN_PROXY_COUNT`` = n trusted proxies in front of the app, the
    address the outermost of them received the request from: the n-th X-Forwarded-For entry from
    the right (each proxy appends its peer's address; entries further left are whatever the client
    sent). A missing or malformed entry falls back to ``REMOTE_ADDR``."""
    remote = request.META.get("REMOTE_ADDR")
    count = settings.LOGIN_PROXY_COUNT
    if not count:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < count:
        return remote
    try:
        return str(ipaddress.ip_address(hops[-count]))
    except ValueError:
        return remote


class AuditedDatabaseHandler(AxesDatabaseHandler):
    """axes' database handler (attempts in the database, no cache), plus a ``login_locked_out``
    audit row when a failure starts a lockout. Attempts refused during a lockout add no row:
    ``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT`` is off, so the backend marks them locked
    before this handler sees them."""

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        already_locked = bool(getattr(request, "axes_locked_out", False))
        super().user_login_failed(sender, credentials, request=request, **kwargs)
        if request is None or already_locked or not getattr(request, "axes_locked_out", False):
            return
        cool_off = get_cool_off(request)
        audit_record(actor=None, action="login_locked_out", outcome="locked", detail={
            "username": (get_client_username(request, credentials) or "")[:150],
            "ip_address": request.axes_ip_address,
            "path": request.path[:200],
            "failure_limit": get_failure_limit(request, credentials),
            "cooloff_minutes": int(cool_off.total_seconds() // 60) if cool_off else None,
        })
