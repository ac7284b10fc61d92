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
from sessions_app.exceptions import InvalidInput, MangaAssistError, SessionNotFound
from sessions_app.ids import validate_id
from sessions_app.selectors import detail as detail_selectors
from sessions_app.selectors import lookup as lookup_selectors
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
from sessions_app.selectors.usage import session_aggregates
from sessions_app.services import handoff as handoff_services
from sessions_app.services import privacy as privacy_services
from sessions_app.services import staff as staff_services
from sessions_app.services import webhooks as webhook_services
from sessions_app.services.audit import audit_record, audited

from .access import OPERATE, VIEW, console_view
from .forms import DeleteConfirmForm, SessionFilterForm, StaffReplyForm, TranscriptSearchForm
from .timezone import COMMON_ZONES, TimeZoneForm


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
    """The sessions list and its filters; with ``q``, the lookup box (``_lookup_page``).
    The customer field takes an id or the start of one, in any case (``selectors.lookup``): one
    customer matching → the list filtered by that customer's id (a redirect: the URL holds the
    exact id); several → the customers to choose from; none → the exact filter, as typed."""
    if "q" in request.GET:
        return _lookup_page(request)
    customer = request.GET.get("customer", "").strip()
    if customer:
        chosen = _customer_filter(request, customer)
        if chosen is not None:
            return chosen
    context, status = _session_list_context(request)
    return render(request, "dashboard/session_list.html", context, status=status)


def _customer_filter(request: HttpRequest, typed: str) -> HttpResponse | None:
    """The answer for a customer field that is not one exact customer id, else None."""
    try:
        matches = lookup_selectors.customer_lookup(query=typed)
    except InvalidInput:
        return None  # not an id: the form says why
    if matches.exact is not None or not matches.ids:
        return None
    query = request.GET.copy()
    query.pop("cursor", None)
    if matches.single:
        query["customer"] = matches.single
        messages.info(request, f"Customer {matches.single} (the one customer id matching “{typed}”).")
        return redirect(f"{reverse('dashboard:session_list')}?{query.urlencode()}")
    choices = []
    for customer_id in matches.ids:
        query["customer"] = customer_id
        choices.append({"customer_id": customer_id, "filter_url": f"?{query.urlencode()}"})
    form = SessionFilterForm(request.GET, username=request.user.get_username())
    form.is_valid()
    return render(request, "dashboard/session_list.html", {
        "form": form, "page": None, "customer_query": typed, "customer_choices": choices,
        "customer_more": matches.more})


def _lookup_page(request: HttpRequest) -> HttpResponse:
    """The top bar's lookup box (``/sessions/?q=``): an exact session id, or the only session
    whose id starts with ``q`` (8+ characters, any case) → that session's page; the only
    customer matching (3+ characters, any case) → the customer's page; several → the matches
    (at most ``LOOKUP_LIMIT`` of each, "refine" beyond); a query too short or no id → 400 with the
    reason next to the box."""
    typed = request.GET.get("q", "").strip()
    if not typed:
        return redirect("dashboard:session_list")
    context = {"form": SessionFilterForm(username=request.user.get_username()), "page": None,
               "lookup_query": typed, "lookup_limit": lookup_selectors.LOOKUP_LIMIT}
    try:
        found = lookup_selectors.lookup(query=typed)
    except InvalidInput as exc:
        return render(request, "dashboard/session_list.html", {**context, "lookup_error": exc.message}, status=400)
    target = found.target
    if target is not None:
        kind, found_id = target
        return redirect(reverse(f"dashboard:{kind}_detail", args=[found_id]))
    if found.error:
        return render(request, "dashboard/session_list.html", {**context, "lookup_error": found.error}, status=400)
    return render(request, "dashboard/session_list.html", {
        **context, "lookup": found, "lookup_rows": lookup_selectors.lookup_rows(session_ids=found.sessions.ids)})


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


# What the close confirmation says (the dialog, and the page a browser without JavaScript gets).
CLOSE_CONSEQUENCES = ("Closing ends the conversation: the bot's next append gets 409 session_closed, "
                      "heartbeats are refused, and a summary is requested.")
CLOSE_CONFIRM_VALUE = "close"  # the confirmation step's field: confirm=close


def _timeline_links(session_id: str, *, order: str, at: int | None, found: int | None, count: int) -> dict:
    """The timeline's navigation (absolute: the page is also rendered as the answer of a POST):
    the order toggle (keeping the turn the page is at), the first and the newest turn."""
    base = reverse("dashboard:session_detail", args=[session_id])

    def url(params: dict, fragment: str) -> str:
        query = urlencode({k: v for k, v in params.items() if v})
        return f"{base}{'?' + query if query else ''}#{fragment}"

    oldest = {"order": detail_selectors.ORDER_OLDEST} if order == detail_selectors.ORDER_OLDEST else {}
    keep = {"at": at} if at else ({"turn": found} if found else {})
    anchor = f"turn-{at or found}" if keep else "timeline-card"
    return {
        "page": base,
        "newest_first": url(keep, anchor),
        "oldest_first": url({**keep, "order": detail_selectors.ORDER_OLDEST}, anchor),
        "first": url({"at": 1, **oldest}, "turn-1"),
        "latest": url(oldest, f"turn-{count}" if count else "timeline-card"),
    }


def _detail_page(request: HttpRequest, session_id: str, *, status: int = 200, close_error: str | None = None,
                 **handoff) -> HttpResponse:
    """The session page. Its timeline: ``?order=oldest`` (else newest first); ``?at=<seq>`` (Go
    to turn, First turn: a window around it, marked); ``?turn=<seq>`` (a search result: down to
    it, marked); ``?down_to``/``?up_to`` (live.js's refresh of the turns shown). ``?confirm=close``
    opens the close confirmation (the confirm page without JavaScript)."""
    found = _seq_param(request, "turn")
    at = _seq_param(request, "at")
    order = detail_selectors.timeline_order(request.GET.get("order"))
    detail = detail_selectors.session_detail(session_id=session_id, down_to=_down_to(request), order=order,
                                             at=at, up_to=_seq_param(request, "up_to"))
    # One META read for the whole page, strongly consistent: the hand-off panel's buttons act on
    # it, and the page shows what staff just did (a close, a summary) — never an older DAX copy.
    meta = detail.meta
    staff_services.staff_viewing_record(session_id=session_id, username=request.user.get_username(), meta=meta)
    viewing = detail_selectors.session_staff_viewing(session_id=session_id, meta=meta)
    timeline = detail.timeline
    count = timeline.turn_count
    at = at if at is not None and at <= count else None
    missing = _seq_param(request, "at") if at is None and _seq_param(request, "at") else None
    return render(request, "dashboard/session_detail.html",
                  {"d": detail, "meta": meta, "handoff_meta": meta, "viewing": viewing, "tl": timeline,
                   "timeline_order": timeline.order, "found_turn": at or found, "goto_at": at, "goto_missing": missing,
                   "links": _timeline_links(session_id, order=timeline.order, at=at, found=found, count=count),
                   "close_confirm": close_error is not None or request.GET.get("confirm") == CLOSE_CONFIRM_VALUE,
                   "close_error": close_error, "close_consequences": CLOSE_CONSEQUENCES,
                   "close_confirm_value": CLOSE_CONFIRM_VALUE,
                   "agg": session_aggregates(meta=detail.meta, turns=detail.turns),
                   **_handoff_context(request, meta, **handoff)}, status=status)


@require_http_methods(["GET", "POST"])
@console_view(VIEW)
def session_viewing_view(request: HttpRequest, session_id: str) -> HttpResponse:
    """The detail page's heartbeat (every 20 s): record that this user has the page open and
    answer who of the staff has it open now, and who owns the session."""
    session_id = _id(session_id, field="session_id")
    # Strongly consistent, like the page: the owner shown is never older than the hand-off panel's.
    meta = staff_services.staff_viewing_record(session_id=session_id, username=request.user.get_username(),
                                               meta=session_get(session_id=session_id, consistent=True))
    viewing = detail_selectors.session_staff_viewing(session_id=meta.session_id, meta=meta)
    return render(request, "dashboard/partials/staff_viewing.html", {"viewing": viewing})


@require_GET
@console_view(VIEW)
def session_turns_older_view(request: HttpRequest, session_id: str) -> HttpResponse:
    """A part of the timeline, in ``?order=`` (oldest, else newest first): an older page
    (``cursor``: replaces "Load older turns"), a newer page (``after=<seq>``: replaces "Load newer
    turns"), or the window again — the newest turns, down to ``down_to`` and up to ``up_to`` if
    given (live.js keeps the turns the page shows when it refreshes the timeline)."""
    session_id = _id(session_id, field="session_id")
    timeline, part, read = detail_selectors.session_timeline_part(
        session_id=session_id, order=request.GET.get("order", ""), cursor=request.GET.get("cursor", ""),
        after=_seq_param(request, "after"), down_to=_down_to(request), up_to=_seq_param(request, "up_to"))
    return render(request, "dashboard/partials/turns.html", {
        "turns": timeline.turns, "cursor": timeline.cursor, "newer_after": timeline.newer_after,
        "order": timeline.order, "long_turns": timeline.long_turns, "part": part, "session_id": session_id,
        "read": read})


@require_GET
@console_view(VIEW)
def session_summary_panel(request: HttpRequest, session_id: str) -> HttpResponse:
    return _summary_panel(request, _id(session_id, field="session_id"))


def _summary_panel(request: HttpRequest, session_id: str, *, notice: str | None = None) -> HttpResponse:
    panel = detail_selectors.session_summary_panel(session_id=session_id)
    return render(request, "dashboard/partials/summary_panel.html",
                  {"p": panel, "meta": panel.meta, "state": panel.state, "summary_read": panel.read,
                   "summary_notice": notice})


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
    """Close, once confirmed: the page's dialog (or, without JavaScript, ``?confirm=close``) posts
    ``confirm=close``. A POST without it closes nothing: the page again with the confirmation
    open and saying why (400)."""
    session_id = _id(session_id, field="session_id")
    if request.POST.get("confirm") != CLOSE_CONFIRM_VALUE:
        return _detail_page(request, session_id, status=400,
                            close_error="The session was not closed: confirm below that it should be.")
    _, changed = staff_services.staff_session_close(actor=request.user, session_id=session_id)
    messages.success(request, "Session closed." if changed else "Session was already closed.")
    return _back_to_session(request, session_id)


@require_POST
@console_view(OPERATE)
def session_summarize_view(request: HttpRequest, session_id: str) -> HttpResponse:
    """Regenerate the summary. Nothing to regenerate — the summary already covers every turn, or
    there is no turn yet — is said, not silently queued (the summary service would not even mark
    it pending); it is audited as ``up_to_date``."""
    session_id = _id(session_id, field="session_id")
    try:
        meta = session_get(session_id=session_id, consistent=True)
    except SessionNotFound:
        meta = None  # staff_summary_request audits the refusal and raises the 404
    nothing = _nothing_to_summarise(meta) if meta is not None else None
    if nothing is not None:
        audit_record(actor=request.user, action="summary_request", outcome="up_to_date", session_id=session_id,
                     customer_id=meta.customer_id, detail={"through_seq": int(meta.summary_through or 0),
                                                           "turn_count": int(meta.turn_count or 0)})
        if request.htmx:
            return _summary_panel(request, session_id, notice=nothing)
        messages.info(request, nothing)
        return _back_to_session(request, session_id)
    task_id = staff_services.staff_summary_request(actor=request.user, session_id=session_id)
    if request.htmx:  # the panel itself shows the task id and state, and polls while pending
        return _summary_panel(request, session_id)
    if task_id is None:
        messages.error(request, "The summary task could not be queued (broker unavailable); the sweep will retry.")
    else:
        messages.success(request, f"Summary regeneration requested (task {task_id}).")
    return _back_to_session(request, session_id)


def _nothing_to_summarise(meta) -> str | None:
    """Why a regeneration would do nothing, or None: the summary covers every turn, or there are
    no turns (``summary_request``'s pending mark is guarded the same way)."""
    count, through = int(meta.turn_count or 0), int(meta.summary_through or 0)
    if count == 0:
        return "There are no turns to summarise yet."
    if through >= count:
        return f"The summary already covers turns 1–{through}; nothing to regenerate."
    return None


def _dry_run_or_delete(request: HttpRequest, *, plan, delete, page: str) -> HttpResponse:
    """GET: the dry run (what would be deleted). POST: the delete, with the id the user typed to
    confirm it, answered with its receipt. A wrong confirmation (refused — and audited — by the
    service) is the dry run again with the form saying why (400), not an error page."""
    if request.method == "GET":
        return render(request, f"dashboard/{page}.html", {"plan": plan(), "form": DeleteConfirmForm()})
    form = DeleteConfirmForm(request.POST)
    try:
        receipt = delete(actor=request.user, confirm=request.POST.get("confirm", ""))
    except InvalidInput as exc:
        form.is_valid()  # bound: the typed value is shown again, with this error on the field
        form.errors.pop("confirm", None)
        form.add_error("confirm", exc.message)
        return render(request, f"dashboard/{page}.html", {"plan": plan(), "form": form}, status=400)
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


# --- preferences ----------------------------------------------------------------------------------

@require_POST
@console_view(VIEW)
def time_zone_view(request: HttpRequest) -> HttpResponse:
    """Set the signed-in staff member's time zone (the header's picker, or time-zone.js proposing
    the browser's zone while none is chosen: ``source=browser`` never replaces a choice). Not
    audited: it changes only how this person's own pages show times (services.profile). An
    invalid zone is a 400 with the form's error."""
    from django.utils.http import url_has_allowed_host_and_scheme

    from sessions_app.services.profile import staff_time_zone_set

    form = TimeZoneForm(request.POST)
    if not form.is_valid():
        return render(request, "dashboard/time_zone.html", {"form": form, "zones": COMMON_ZONES}, status=400)
    data = form.cleaned_data
    if not (data.get("source") == "browser" and getattr(request, "staff_time_zone", "")):
        staff_time_zone_set(user=request.user, time_zone=data["time_zone"])
    if data.get("source") == "browser":
        return HttpResponse(status=204)
    target = data.get("next") or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        target = reverse("dashboard:overview")
    return redirect(target)
