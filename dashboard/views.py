"""Console views: parse the request, call one selector or service, render.

Reads need ``view_chat_sessions`` (Viewer); actions need ``operate_chat_sessions`` (Supervisor),
are POST-only (CSRF-protected) and are audited by the services they call. The hand-off actions
(take over, reply, hand back, deliver a reply again) need ``handle_chat_sessions`` (Agent,
Supervisor) and are audited here through ``services.audit`` — success and failure alike, a refusal
by the access gate.

The queue and the session list have partials (their table regions) that ``live-list.js`` swaps in
when the activity stream reports a hand-off change; the detail page pings a partial every 20 s that
answers who of the staff has it open.

Transcript search (``search/``) reads like the list; its results link to the detail page with
``?turn=<seq>#turn-<seq>``, which renders the timeline down to that turn and marks it.
"""

from __future__ import annotations

from functools import partial

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sessions_app.access import HANDLE, staff_allowed, staff_require
from sessions_app.exceptions import InvalidInput, MangaAssistError
from sessions_app.ids import validate_id
from sessions_app.selectors import detail as detail_selectors
from sessions_app.selectors.browse import session_browse
from sessions_app.downloads import export_response
from sessions_app.selectors.export import export_format, session_iter_filtered
from sessions_app.selectors.filters import SessionFilter
from sessions_app.selectors.handoff import handoff_queue, handoff_state
from sessions_app.selectors.infrastructure import infrastructure
from sessions_app.selectors.overview import (
    handoff_waiting_count,
    overview_activity,
    overview_metrics,
    search_index_panel,
)
from sessions_app.selectors.privacy import privacy_customer_plan, privacy_delete_plan
from sessions_app.selectors.search import SEARCH_PAGE, transcript_search
from sessions_app.selectors.sessions import session_get, turns_page
from sessions_app.services import handoff as handoff_services
from sessions_app.services import privacy as privacy_services
from sessions_app.services import staff as staff_services
from sessions_app.services import webhooks as webhook_services
from sessions_app.services.audit import audited

from .access import OPERATE, VIEW, console_view
from .forms import DeleteConfirmForm, SessionFilterForm, StaffReplyForm, TranscriptSearchForm


def _id(value: str, *, field: str) -> str:
    try:
        return validate_id(value, field=field)
    except InvalidInput:
        raise Http404(f"no such {field}") from None


def _seq_param(request: HttpRequest, name: str) -> int | None:
    """A turn the timeline must reach: ``?turn=<seq>`` (a search result's link: reached and
    marked) or ``?down_to=<seq>`` (live.js's refresh: the oldest turn the page shows). Navigation
    hints, not filters: anything but a positive number is ignored."""
    raw = request.GET.get(name, "")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 10**12 else None


def _down_to(request: HttpRequest) -> int | None:
    seqs = [s for s in (_seq_param(request, "turn"), _seq_param(request, "down_to")) if s is not None]
    return min(seqs) if seqs else None


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


# --- infrastructure (Supervisor) ------------------------------------------------------------------

@require_GET
@console_view(OPERATE)
def infrastructure_view(request: HttpRequest) -> HttpResponse:
    """The table, its indexes, recovery and capacity; DAX; Redis. Read-only (not audited, like the
    delete dry runs; a refused Viewer is, by the gate). Each part is cached per process for
    ``CACHE_SECONDS`` and says "unavailable" with the reason when its read fails."""
    return render(request, "dashboard/infrastructure.html", {"infra": infrastructure()})


# --- sessions -------------------------------------------------------------------------------------

def _session_list_context(request: HttpRequest) -> tuple[dict, int]:
    form = SessionFilterForm(request.GET or None, username=request.user.get_username())
    page = None
    if form.is_bound and not form.is_valid():
        status = 400
    else:
        status = 200
        filters = form.session_filter if form.is_bound else SessionFilter()
        page = session_browse(filters=filters, cursor=request.GET.get("cursor") or None)
    query = request.GET.copy()
    query.pop("cursor", None)
    return {
        "form": form, "page": page, "filter_query": query.urlencode(),
        "next_url": f"?{urlencode({**query.dict(), 'cursor': page.cursor})}" if page and page.cursor else None,
        # The live region re-reads this very page (same filter, same cursor).
        "rows_url": f"{reverse('dashboard:session_list_rows')}?{request.GET.urlencode()}",
    }, status


@require_GET
@console_view(VIEW)
def session_list_view(request: HttpRequest) -> HttpResponse:
    context, status = _session_list_context(request)
    return render(request, "dashboard/session_list.html", context, status=status)


@require_GET
@console_view(VIEW)
def session_list_rows(request: HttpRequest) -> HttpResponse:
    """The session list's rows and pager (its live region), for the query string's filter and
    page; with the "needs a human" count for the title (memoised: it may lag by 5 s)."""
    context, status = _session_list_context(request)
    if context["page"] is None:
        field, errors = next(iter(context["form"].errors.items()))
        raise InvalidInput(f"invalid filter {field}: {' '.join(errors)}", field=field)
    return render(request, "dashboard/partials/session_list_region.html",
                  {**context, "waiting": handoff_waiting_count()}, status=status)


@require_GET
@console_view(VIEW)
def session_detail_view(request: HttpRequest, session_id: str) -> HttpResponse:
    return _detail_page(request, _id(session_id, field="session_id"))


def _detail_page(request: HttpRequest, session_id: str, *, status: int = 200, **handoff) -> HttpResponse:
    found = _seq_param(request, "turn")
    detail = detail_selectors.session_detail(session_id=session_id, down_to=_down_to(request))
    # The hand-off panel's buttons act on its state: META strongly consistent (one more GetItem),
    # not a DAX copy that may predate the take-over this page follows.
    handoff_meta = session_get(session_id=session_id, consistent=True)
    staff_services.staff_viewing_record(session_id=session_id, username=request.user.get_username(),
                                        meta=handoff_meta)
    viewing = detail_selectors.session_staff_viewing(session_id=session_id, meta=handoff_meta)
    return render(request, "dashboard/session_detail.html",
                  {"d": detail, "meta": detail.meta, "handoff_meta": handoff_meta, "viewing": viewing,
                   "found_turn": found, **_handoff_context(request, handoff_meta, **handoff)}, status=status)


@require_http_methods(["GET", "POST"])
@console_view(VIEW)
def session_viewing_view(request: HttpRequest, session_id: str) -> HttpResponse:
    """The detail page's heartbeat (every 20 s): record that this user has the page open and
    answer who of the staff has it open now, and who owns the session."""
    meta = staff_services.staff_viewing_record(session_id=_id(session_id, field="session_id"),
                                               username=request.user.get_username())
    viewing = detail_selectors.session_staff_viewing(session_id=meta.session_id, meta=meta)
    return render(request, "dashboard/partials/staff_viewing.html", {"viewing": viewing})


@require_GET
@console_view(VIEW)
def session_turns_older_view(request: HttpRequest, session_id: str) -> HttpResponse:
    """An older page (``cursor``), or the newest page — down to ``down_to`` if given (live.js keeps
    the turns the page shows when it refreshes the timeline)."""
    page, read = detail_selectors.session_turns_older(session_id=_id(session_id, field="session_id"),
                                                     cursor=request.GET.get("cursor", ""), down_to=_down_to(request))
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


# --- transcript search ----------------------------------------------------------------------------

SEARCH_PAGE_TURNS = SEARCH_PAGE  # matching turns per results page


@require_GET
@console_view(VIEW)
def search_view(request: HttpRequest) -> HttpResponse:
    """Transcript search: the query with the list's filters, hits grouped by session, paged by
    cursor ("Next page"; no total). No query: the form alone. A refused value (bad day, cursor,
    a query of punctuation only) is shown on its field, with 400."""
    form = TranscriptSearchForm(request.GET or None)
    results, status = None, 200
    if form.is_bound and not form.is_valid():
        status = 400
    elif form.is_bound and form.search_args()["query"]:
        try:
            results = transcript_search(**form.search_args(), limit=SEARCH_PAGE_TURNS)
        except InvalidInput as exc:
            form.show_error(exc)
            status = 400
    query = request.GET.copy()
    query.pop("cursor", None)
    return render(request, "dashboard/search.html", {
        "form": form, "results": results, "index": search_index_panel(), "first_url": f"?{query.urlencode()}",
        "next_url": f"?{urlencode({**query.dict(), 'cursor': results.cursor})}" if results and results.cursor else None,
    }, status=status)


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
    form = SessionFilterForm(request.GET, username=request.user.get_username())
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        raise InvalidInput(f"invalid filter {field}: {' '.join(errors)}", field=field)
    filters = form.session_filter
    staff_services.staff_export_record(actor=request.user, fmt=fmt, scope="filter",
                                       customer_id=filters.customer_id or "", filters=filters.as_dict())
    return export_response(fmt=fmt, sessions=session_iter_filtered(filters=filters), filename="sessions")


# --- hand-off (Agent, Supervisor) -----------------------------------------------------------------
#
# Every outcome is shown on the page, never as a 500: a refused transition (someone else owns it,
# the bot still has it, closed) is the hand-off panel with the reason; a bad reply is the reply
# form with a field error. A plain POST answers with a redirect (success) or the detail page
# (409/400/429); an htmx POST with the hand-off panel alone, always 200 (htmx swaps only 2xx
# answers), its ``data-outcome`` saying "ok" or "refused".

# The outcomes shown in the panel; anything else (missing session, store down) is the console's
# error page (``console_view``).
_SHOWN = (400, 409, 429)
QUEUE_PAGE = 100  # the queue page lists at most this many (oldest first)


def _display_name(user) -> str:
    """What the customer and colleagues see: the full name, or the username."""
    return ((user.get_full_name() or "").strip() or user.get_username())[:150]


def _handoff_context(request: HttpRequest, meta, *, error: MangaAssistError | None = None,
                     reply_form: StaffReplyForm | None = None, notice: str | None = None) -> dict:
    user = request.user
    state = handoff_state(meta)
    owns = bool(meta.owner) and meta.owner == user.get_username()
    can_handle = staff_allowed(user=user, perm=HANDLE)
    return {
        "handoff": state, "handoff_owns": owns, "handoff_error": error, "handoff_notice": notice,
        "handoff_idle_minutes": settings.HANDOFF_IDLE_MINUTES,
        "can_handle": can_handle, "can_operate": staff_allowed(user=user, perm=OPERATE),
        "reply_form": reply_form if reply_form is not None else (StaffReplyForm() if owns and can_handle else None),
    }


def _handoff_answer(request: HttpRequest, session_id: str, *, success: str, error: MangaAssistError | None = None,
                    reply_form: StaffReplyForm | None = None, timeline: bool = False) -> HttpResponse:
    if not request.htmx:
        if error is None:
            messages.success(request, success)
            return _back_to_session(request, session_id)
        return _detail_page(request, session_id, status=error.http_status, error=error, reply_form=reply_form)
    # The panel acts on what it shows: META strongly consistent, so the buttons match the state.
    meta = session_get(session_id=session_id, consistent=True)
    context = {"meta": meta, **_handoff_context(request, meta, error=error, reply_form=reply_form,
                                                notice=None if error else success)}
    if timeline and error is None:  # the reply appears in the timeline at once (out-of-band swap)
        page = turns_page(session_id=session_id, limit=detail_selectors.DETAIL_TURNS, meta=meta)
        context.update(oob_turns=page.turns, oob_cursor=page.cursor)
    return render(request, "dashboard/partials/handoff_panel.html", context)


def _handoff_run(request: HttpRequest, *, action: str, session_id: str, run) -> tuple[object, MangaAssistError | None]:
    """Run one hand-off service call under an audit row (``action``): "ok", or "error" with the
    exception's code and message (and the owner it names, if any). Returns (result, None), or
    (None, the refusal) for an outcome the page shows; anything else propagates."""
    try:
        with audited(actor=request.user, action=action, session_id=session_id) as audit:
            try:
                result = run(audit)
            except MangaAssistError as exc:
                if exc.details.get("owner"):
                    audit.detail["owner"] = str(exc.details["owner"])
                raise
    except MangaAssistError as exc:
        if exc.http_status not in _SHOWN:
            raise
        return None, exc
    return result, None


@require_POST
@console_view(HANDLE)
def session_takeover_view(request: HttpRequest, session_id: str) -> HttpResponse:
    session_id = _id(session_id, field="session_id")
    user = request.user

    def run(audit):
        meta = handoff_services.handoff_take(session_id=session_id, username=user.get_username(),
                                             display_name=_display_name(user))
        audit.customer_id = meta.customer_id
        audit.detail["owner"] = meta.owner_name or meta.owner
        return meta

    _, error = _handoff_run(request, action="session_takeover", session_id=session_id, run=run)
    return _handoff_answer(request, session_id, error=error,
                           success="You have taken this session over: the bot is paused until you hand it back.")


@require_POST
@console_view(HANDLE)
def session_reply_view(request: HttpRequest, session_id: str) -> HttpResponse:
    session_id = _id(session_id, field="session_id")
    user = request.user
    form = StaffReplyForm(request.POST)

    def run(audit):
        if not form.is_valid():
            field, errors = next(iter(form.errors.items()))
            raise InvalidInput(" ".join(errors), field=field)
        result = handoff_services.staff_reply(session_id=session_id, username=user.get_username(),
                                              display_name=_display_name(user), text=form.cleaned_data["text"])
        audit.customer_id = result.meta.customer_id
        audit.detail.update(seq=int(result.turn.seq), chars=len(form.cleaned_data["text"]))
        return result

    _, error = _handoff_run(request, action="session_reply", session_id=session_id, run=run)
    if isinstance(error, InvalidInput) and error.field in (None, "text"):
        if not form.errors:
            form.add_error("text", error.message)
        return _handoff_answer(request, session_id, success="", error=error, reply_form=form)
    return _handoff_answer(request, session_id, error=error, timeline=True,
                           reply_form=form if error is not None else None, success="Reply sent.")


@require_POST
@console_view(HANDLE)
def session_handback_view(request: HttpRequest, session_id: str) -> HttpResponse:
    """The owner hands the session back to the bot; a Supervisor (``operate``) may force it for
    someone else's session or one that waits (``force=1``)."""
    session_id = _id(session_id, field="session_id")
    force = request.POST.get("force") in ("1", "true", "on")
    if force:
        staff_require(user=request.user, perm=OPERATE, action="session_handback", session_id=session_id)

    def run(audit):
        before = session_get(session_id=session_id, consistent=True)
        meta = handoff_services.handoff_release(session_id=session_id, username=request.user.get_username(),
                                                force=force)
        audit.customer_id = meta.customer_id
        audit.detail.update(force=force, owner=before.owner_name or before.owner or "")
        return meta

    _, error = _handoff_run(request, action="session_handback", session_id=session_id, run=run)
    return _handoff_answer(request, session_id, error=error, success="Handed back: the bot answers again.")


# --- deliver again (Agent, Supervisor) ------------------------------------------------------------

_REDELIVERED = {"pending": "Delivery requested again.", "delivered": "Already delivered: nothing sent again.",
                "not_configured": "Not delivered: no bot webhook is configured."}


@require_POST
@console_view(HANDLE)
def session_redeliver_view(request: HttpRequest, session_id: str, seq: int) -> HttpResponse:
    """"Deliver again" of a staff reply that failed, was not queued or found no webhook
    configured (``services.webhooks.webhook_delivery_retry``), audited as ``session_redeliver``
    with the state it left. htmx: the turn itself, re-read (always 200, ``data-outcome``)."""
    session_id = _id(session_id, field="session_id")

    def run(audit):
        audit.detail["seq"] = seq
        audit.customer_id = session_get(session_id=session_id).customer_id
        state = webhook_services.webhook_delivery_retry(session_id=session_id, seq=seq)
        audit.detail["state"] = state
        return state

    state, error = _handoff_run(request, action="session_redeliver", session_id=session_id, run=run)
    notice = None if error else _REDELIVERED.get(state, f"Delivery {state}.")
    if not request.htmx:
        if error is None:
            messages.success(request, notice)
        else:
            messages.error(request, error.message)
        return redirect(reverse("dashboard:session_detail", args=[session_id]) + f"#turn-{seq}")
    turn = detail_selectors.session_turn(session_id=session_id, seq=seq)
    if turn is None:  # not a turn of this session: the refusal is the answer
        raise error or InvalidInput(f"turn {seq} of session {session_id} does not exist", field="seq")
    return render(request, "dashboard/partials/turn.html", {
        "t": turn, "session_id": session_id, "turn_error": error, "turn_notice": notice})


# --- the queue ------------------------------------------------------------------------------------

def _queue_context(request: HttpRequest) -> dict:
    rows = [{"meta": m, "state": handoff_state(m)} for m in handoff_queue(limit=QUEUE_PAGE)]
    return {"rows": rows, "can_handle": staff_allowed(user=request.user, perm=HANDLE),
            "handoff_idle_minutes": settings.HANDOFF_IDLE_MINUTES, "queue_page": QUEUE_PAGE}


@require_GET
@console_view(VIEW)
def handoff_queue_view(request: HttpRequest) -> HttpResponse:
    """The "needs a human" queue: unowned hand-offs, longest waiting first."""
    return render(request, "dashboard/handoff_queue.html", _queue_context(request))


@require_GET
@console_view(VIEW)
def handoff_queue_rows(request: HttpRequest) -> HttpResponse:
    """The queue's live region (its count and table), and the count for the page title: the
    rows themselves when the queue is listed whole (fresher than the memoised count), else the
    count of every queue shard."""
    context = _queue_context(request)
    rows = context["rows"]
    context["waiting"] = len(rows) if len(rows) < QUEUE_PAGE else handoff_waiting_count()
    return render(request, "dashboard/partials/handoff_queue_region.html", context)
