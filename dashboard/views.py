"""Console views: parse the request, call one selector or service, render.

Reads need ``view_chat_sessions`` (Viewer); actions need ``operate_chat_sessions`` (Supervisor),
are POST-only (CSRF-protected) and are audited by the services they call.
"""

from __future__ import annotations

from functools import partial

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sessions_app.exceptions import InvalidInput
from sessions_app.ids import validate_id
from sessions_app.selectors import detail as detail_selectors
from sessions_app.selectors.browse import session_browse
from sessions_app.downloads import export_response
from sessions_app.selectors.export import export_format, session_iter_filtered
from sessions_app.selectors.filters import SessionFilter
from sessions_app.selectors.overview import overview_activity, overview_metrics
from sessions_app.selectors.privacy import privacy_customer_plan, privacy_delete_plan
from sessions_app.selectors.sessions import session_get
from sessions_app.services import privacy as privacy_services
from sessions_app.services import staff as staff_services

from .access import OPERATE, VIEW, console_view
from .forms import DeleteConfirmForm, SessionFilterForm


def _id(value: str, *, field: str) -> str:
    try:
        return validate_id(value, field=field)
    except InvalidInput:
        raise Http404(f"no such {field}") from None


# --- overview -------------------------------------------------------------------------------------

@require_GET
@console_view(VIEW)
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/overview.html", {"m": overview_metrics(), "activity": overview_activity()})


@require_GET
@console_view(VIEW)
def overview_metrics_partial(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/partials/overview_metrics.html", {"m": overview_metrics()})


@require_GET
@console_view(VIEW)
def overview_activity_partial(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/partials/activity_feed.html", {"activity": overview_activity()})


# --- sessions -------------------------------------------------------------------------------------

@require_GET
@console_view(VIEW)
def session_list_view(request: HttpRequest) -> HttpResponse:
    form = SessionFilterForm(request.GET or None)
    page = None
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        status = 200
        filters = form.session_filter if form.is_bound else SessionFilter()
        page = session_browse(filters=filters, cursor=request.GET.get("cursor") or None)
    query = request.GET.copy()
    query.pop("cursor", None)
    return render(request, "dashboard/session_list.html", {
        "form": form, "page": page, "filter_query": query.urlencode(),
        "next_url": f"?{urlencode({**query.dict(), 'cursor': page.cursor})}" if page and page.cursor else None,
    }, status=status)


@require_GET
@console_view(VIEW)
def session_detail_view(request: HttpRequest, session_id: str) -> HttpResponse:
    detail = detail_selectors.session_detail(session_id=_id(session_id, field="session_id"))
    return render(request, "dashboard/session_detail.html", {"d": detail, "meta": detail.meta})


@require_GET
@console_view(VIEW)
def session_turns_older_view(request: HttpRequest, session_id: str) -> HttpResponse:
    page, read = detail_selectors.session_turns_older(session_id=_id(session_id, field="session_id"),
                                                     cursor=request.GET.get("cursor", ""))
    return render(request, "dashboard/partials/turns.html", {"turns": page.turns, "cursor": page.cursor,
                                                             "session_id": session_id, "read": read})


@require_GET
@console_view(VIEW)
def session_summary_panel(request: HttpRequest, session_id: str) -> HttpResponse:
    return _summary_panel(request, _id(session_id, field="session_id"))


def _summary_panel(request: HttpRequest, session_id: str) -> HttpResponse:
    panel = detail_selectors.session_summary_panel(session_id=session_id)
    return render(request, "dashboard/partials/summary_panel.html",
                  {"p": panel, "meta": panel.meta, "state": panel.state, "summary_read": panel.read})


@require_GET
@console_view(VIEW)
def session_verify_view(request: HttpRequest, session_id: str) -> HttpResponse:
    report = detail_selectors.session_verify(session_id=_id(session_id, field="session_id"))
    return render(request, "dashboard/partials/verify.html", {"report": report})


@require_GET
@console_view(VIEW)
def customer_detail_view(request: HttpRequest, customer_id: str) -> HttpResponse:
    filters = SessionFilter.for_customer(_id(customer_id, field="customer_id"))
    page = session_browse(filters=filters, cursor=request.GET.get("cursor") or None)
    return render(request, "dashboard/customer_detail.html", {
        "customer_id": customer_id, "page": page, "day_from": filters.day_from,
        "next_url": f"?{urlencode({'cursor': page.cursor})}" if page.cursor else None,
    })


# --- actions (Supervisor) -------------------------------------------------------------------------

def _back_to_session(request: HttpRequest, session_id: str) -> HttpResponse:
    return redirect(reverse("dashboard:session_detail", args=[session_id]))


@require_POST
@console_view(OPERATE)
def session_close_view(request: HttpRequest, session_id: str) -> HttpResponse:
    session_id = _id(session_id, field="session_id")
    _, changed = staff_services.staff_session_close(actor=request.user, session_id=session_id)
    messages.success(request, "Session closed." if changed else "Session was already closed.")
    return _back_to_session(request, session_id)


@require_POST
@console_view(OPERATE)
def session_summarize_view(request: HttpRequest, session_id: str) -> HttpResponse:
    session_id = _id(session_id, field="session_id")
    task_id = staff_services.staff_summary_request(actor=request.user, session_id=session_id)
    if request.htmx:  # the panel itself shows the task id and state, and polls while pending
        return _summary_panel(request, session_id)
    if task_id is None:
        messages.error(request, "The summary task could not be queued (broker unavailable); the sweep will retry.")
    else:
        messages.success(request, f"Summary regeneration requested (task {task_id}).")
    return _back_to_session(request, session_id)


def _dry_run_or_delete(request: HttpRequest, *, plan, delete, page: str) -> HttpResponse:
    """GET: the dry run (what would be deleted). POST: the delete, with the id the user typed to
    confirm it, answered with its receipt."""
    if request.method == "GET":
        return render(request, f"dashboard/{page}.html", {"plan": plan(), "form": DeleteConfirmForm()})
    receipt = delete(actor=request.user, confirm=request.POST.get("confirm", ""))
    return render(request, f"dashboard/{page}_receipt.html", {"receipt": receipt})


@require_http_methods(["GET", "POST"])
@console_view(OPERATE)
def session_delete_view(request: HttpRequest, session_id: str) -> HttpResponse:
    session_id = _id(session_id, field="session_id")
    return _dry_run_or_delete(request, page="session_delete",
                              plan=partial(privacy_delete_plan, session_id=session_id),
                              delete=partial(privacy_services.privacy_delete_execute, session_id=session_id))


@require_http_methods(["GET", "POST"])
@console_view(OPERATE)
def customer_delete_view(request: HttpRequest, customer_id: str) -> HttpResponse:
    """Everything of one customer (a data-subject request is per person)."""
    customer_id = _id(customer_id, field="customer_id")
    return _dry_run_or_delete(request, page="customer_delete",
                              plan=partial(privacy_customer_plan, customer_id=customer_id),
                              delete=partial(privacy_services.privacy_customer_delete, customer_id=customer_id))


def _format(request: HttpRequest) -> str:
    return export_format(request.POST.get("format", "json"))


@require_POST
@console_view(OPERATE)
def session_export(request: HttpRequest, session_id: str) -> HttpResponse:
    session_id, fmt = _id(session_id, field="session_id"), _format(request)
    meta = session_get(session_id=session_id)
    staff_services.staff_export_record(actor=request.user, fmt=fmt, scope="session", session_id=session_id,
                                       customer_id=meta.customer_id)
    return export_response(fmt=fmt, sessions=[meta], filename=f"session-{session_id}")


@require_POST
@console_view(OPERATE)
def customer_export(request: HttpRequest, customer_id: str) -> HttpResponse:
    customer_id, fmt = _id(customer_id, field="customer_id"), _format(request)
    filters = SessionFilter.for_customer(customer_id)
    staff_services.staff_export_record(actor=request.user, fmt=fmt, scope="customer", customer_id=customer_id)
    return export_response(fmt=fmt, sessions=session_iter_filtered(filters=filters), filename=f"customer-{customer_id}")


@require_POST
@console_view(OPERATE)
def filter_export(request: HttpRequest) -> HttpResponse:
    """Export the sessions list's current filter (the filters travel in the query string)."""
    fmt = _format(request)
    form = SessionFilterForm(request.GET)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        raise InvalidInput(f"invalid filter {field}: {' '.join(errors)}", field=field)
    filters = form.session_filter
    staff_services.staff_export_record(actor=request.user, fmt=fmt, scope="filter",
                                       customer_id=filters.customer_id or "", filters=filters.as_dict())
    return export_response(fmt=fmt, sessions=session_iter_filtered(filters=filters), filename="sessions")
