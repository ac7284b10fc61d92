"""The admin's Chat sessions section: search, a session's page and its actions, and the
privacy delete of a customer.

Chat sessions live in DynamoDB, not in the ORM, so they get admin *views* instead of a
ModelAdmin, rendered with the admin's templates. Like a ModelAdmin, ``ChatSessionViews`` is built
with its site and hands it its ``urls``. Every view calls the same selectors, services and access
policy (``sessions_app.access``) as the staff console; the site's ``admin_view`` wrapper has
already required an active staff login.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_http_methods, require_POST

from ..access import OPERATE, VIEW, staff_allowed, staff_require
from ..exceptions import MangaAssistError, SessionNotFound
from ..ids import validate_id
from ..selectors.browse import session_browse
from ..selectors.detail import session_detail
from ..downloads import export_response
from ..selectors.filters import SessionFilter
from ..selectors.privacy import privacy_customer_plan, privacy_delete_plan
from ..selectors.sessions import session_get
from ..services.privacy import privacy_customer_delete, privacy_delete_execute
from ..services.staff import staff_export_record, staff_session_close, staff_summary_request


def _valid_id(value: str, *, field: str) -> str:
    try:
        return validate_id(value, field=field)
    except MangaAssistError:
        raise Http404(f"no such {field}") from None


class ChatSessionViews:
    def __init__(self, site: admin.AdminSite) -> None:
        self.site = site

    @property
    def urls(self) -> list[URLPattern]:
        wrap = self.site.admin_view
        return [
            path("chat-sessions/", wrap(self.index), name="chat_sessions"),
            path("chat-sessions/customer/<str:customer_id>/delete/",
                 wrap(require_http_methods(["GET", "POST"])(self.customer_delete)), name="chat_customer_delete"),
            path("chat-sessions/<str:session_id>/", wrap(self.detail), name="chat_session_detail"),
            # POST-only; the admin's CSRF middleware protects the actions like every admin form.
            path("chat-sessions/<str:session_id>/action/", wrap(require_POST(self.action)), name="chat_session_action"),
        ]

    def _render(self, request: HttpRequest, template: str, *, status: int = 200, **context) -> TemplateResponse:
        return TemplateResponse(request, f"admin/chat_sessions/{template}",
                                {**self.site.each_context(request), **context}, status=status)

    def index(self, request: HttpRequest) -> HttpResponse:
        """Search by session id (opens it) or customer id (lists that customer's sessions)."""
        staff_require(user=request.user, perm=VIEW, action="admin_chat_sessions")
        q = request.GET.get("q", "").strip()
        if q:
            try:
                session_get(session_id=validate_id(q, field="q"))
                return redirect("admin:chat_session_detail", session_id=q)
            except MangaAssistError:
                pass
        try:
            filters = SessionFilter.for_customer(validate_id(q, field="q")) if q else SessionFilter()
            page = session_browse(filters=filters, cursor=request.GET.get("cursor") or None)
        except MangaAssistError as exc:
            return self._render(request, "index.html", status=400, title="Chat sessions", q=q, error=exc.message)
        next_url = f"?{urlencode({'q': q, 'cursor': page.cursor})}" if page.cursor else None
        return self._render(request, "index.html", title="Chat sessions", q=q, page=page, next_url=next_url,
                            customer_id=filters.customer_id,
                            can_operate=staff_allowed(user=request.user, perm=OPERATE))

    def detail(self, request: HttpRequest, session_id: str) -> HttpResponse:
        staff_require(user=request.user, perm=VIEW, action="admin_chat_session_detail", session_id=session_id)
        try:
            d = session_detail(session_id=_valid_id(session_id, field="session_id"))
        except SessionNotFound:
            raise Http404("no such session") from None
        return self._render(request, "detail.html", title=f"Chat session {session_id}", d=d, meta=d.meta,
                            can_operate=staff_allowed(user=request.user, perm=OPERATE))

    @staticmethod
    def _redirect_back(session_id: str) -> HttpResponse:
        return redirect(reverse("admin:chat_session_detail", args=[session_id]))

    def action(self, request: HttpRequest, session_id: str) -> HttpResponse:
        session_id = _valid_id(session_id, field="session_id")
        action = request.POST.get("action", "")
        staff_require(user=request.user, perm=OPERATE, action=f"admin_{action}", session_id=session_id)
        try:
            if action == "close":
                _, changed = staff_session_close(actor=request.user, session_id=session_id)
                messages.success(request, "Session closed." if changed else "Session was already closed.")
            elif action == "summarize":
                task_id = staff_summary_request(actor=request.user, session_id=session_id)
                if task_id:
                    messages.success(request, f"Summary requested (task {task_id}).")
                else:
                    messages.error(request, "The summary task could not be queued; the sweep will retry.")
            elif action in ("export_json", "export_csv"):
                fmt = action.removeprefix("export_")
                meta = session_get(session_id=session_id)
                staff_export_record(actor=request.user, fmt=fmt, scope="session", session_id=session_id,
                                    customer_id=meta.customer_id)
                return export_response(fmt=fmt, sessions=[meta], filename=f"session-{session_id}")
            elif action == "delete_plan":
                return self._render(request, "delete.html", title="Privacy delete: dry run",
                                    plan=privacy_delete_plan(session_id=session_id))
            elif action == "delete":
                receipt = privacy_delete_execute(actor=request.user, session_id=session_id,
                                                 confirm=request.POST.get("confirm", ""))
                return self._render(request, "delete.html", title="Privacy delete receipt", receipt=receipt)
            else:
                return HttpResponse("unknown action", status=400)
        except SessionNotFound:
            raise Http404("no such session") from None
        except MangaAssistError as exc:
            messages.error(request, exc.message)
        return self._redirect_back(session_id)

    def customer_delete(self, request: HttpRequest, customer_id: str) -> HttpResponse:
        """GET: the dry run for everything of the customer. POST: the delete and its receipt."""
        customer_id = _valid_id(customer_id, field="customer_id")
        staff_require(user=request.user, perm=OPERATE, action="admin_customer_delete", customer_id=customer_id)
        if request.method == "GET":
            return self._render(request, "customer_delete.html", title=f"Privacy delete of customer {customer_id}: dry run",
                                plan=privacy_customer_plan(customer_id=customer_id))
        try:
            receipt = privacy_customer_delete(actor=request.user, customer_id=customer_id,
                                              confirm=request.POST.get("confirm", ""))
        except MangaAssistError as exc:
            messages.error(request, exc.message)
            return redirect(reverse("admin:chat_customer_delete", args=[customer_id]))
        return self._render(request, "customer_delete.html", title="Customer privacy delete receipt", receipt=receipt)
