"""One session for staff: the detail page, its timeline (a window of turns, newest or oldest
first, and the pages around it), the summary panel, who of the staff is looking at it, one turn
re-read, and "Verify against DynamoDB" (a ConsistentRead re-read of what the page shows).

Staff pages read META strongly consistent (one GetItem straight to DynamoDB): what they show is
at least as new as what staff just did — a close, a regeneration, a take-over — or what a panel
has already polled. Through DAX, META can lag a transaction by DAX's item TTL (its item cache is
refreshed in the background after TransactWriteItems). Turns and summaries still come through
DAX: they never change once written, and the range asked for is bounded by that META.

Each panel comes with its provenance (see ``provenance.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import keys
from ..exceptions import RedisUnavailable
from ..models import SessionMeta, Summary, Turn
from ..realtime import (
    Presence,
    RateDecision,
    StaffViewer,
    connections_for_session,
    presence_get,
    rate_limit_peek,
    staff_viewing,
)
from .presenters import session_dict, summary_dict, turn_dict
from .provenance import Provenance, redis_read, store_read
from .raw import ItemView
from .sessions import TURNS_CURSOR, TurnPage, session_get, session_view, summary_latest, turns_page
from .summaries import SummaryState, summary_state

DETAIL_TURNS = 50
# The most turns the page renders to reach a turn a search result links to (``?turn=``); one
# Query (``turns_page``'s bound). Older than that, the page's script loads older pages itself.
DETAIL_FIND_MAX_TURNS = 500
# A turn this long (UTF-8 bytes, as TURN_TEXT_MAX_BYTES counts them) is shown collapsed, with a
# "show all" toggle.
LONG_TURN_BYTES = 10 * 1024

# The timeline's order: newest first (the default) or oldest first, as a transcript reads.
ORDER_NEWEST = "newest"
ORDER_OLDEST = "oldest"
TIMELINE_ORDERS = (ORDER_NEWEST, ORDER_OLDEST)


def timeline_order(value: str | None) -> str:
    """``oldest`` or ``newest``; anything else is the default, newest first."""
    return value if value in TIMELINE_ORDERS else ORDER_NEWEST


def window_around(*, turn_count: int, at: int, page: int = DETAIL_TURNS) -> tuple[int, int]:
    """The seqs ``(low, high)`` of a window of ``page`` turns with turn ``at`` in its middle,
    moved inside 1..``turn_count`` at either end: turn 1 of 200 → 1..50, turn 100 → 76..125."""
    low = max(1, at - (page - 1) // 2)
    high = min(turn_count, low + page - 1)
    return max(1, high - page + 1), high


def long_turns(turns) -> frozenset[int]:
    """The seqs of the turns shown collapsed (at least ``LONG_TURN_BYTES`` of text)."""
    found = set()
    for t in turns:
        text = t.text or ""
        # A character is 1–4 bytes: only a text between a quarter of the limit and the limit
        # needs encoding to tell.
        if len(text) >= LONG_TURN_BYTES or (len(text) * 4 >= LONG_TURN_BYTES
                                            and len(text.encode("utf-8")) >= LONG_TURN_BYTES):
            found.add(int(t.seq))
    return frozenset(found)


def detail_turns_for(*, turn_count: int, down_to: int | None, page: int = DETAIL_TURNS) -> int:
    """How many of the newest turns the timeline shows so that turn ``down_to`` is among them:
    whole pages of ``page`` turns (what pressing "Load older turns" would have shown), at most
    ``DETAIL_FIND_MAX_TURNS``. No ``down_to`` (or none in range): one page."""
    if down_to is None or not 1 <= down_to <= turn_count or turn_count - down_to < page:
        return page
    pages = -(-(turn_count - down_to + 1) // page)  # ceil
    return max(page, min(pages, DETAIL_FIND_MAX_TURNS // page) * page)


@dataclass(frozen=True)
class Timeline:
    """A window of a session's turns: ``low``..``high`` (what the page shows), in ``order``."""

    turns: list[ItemView]  # newest first, as turns_page returns them (the template reverses them)
    order: str  # ORDER_NEWEST or ORDER_OLDEST
    low: int  # the oldest seq in the window (0: no turns)
    high: int  # the newest seq in the window (0: no turns)
    turn_count: int  # META's count when the window was read
    cursor: str | None  # "Load older turns" (turns_page's cursor); None: the window starts at turn 1
    newer_after: int | None  # "Load newer turns" loads the turns after this seq; None: reaches the newest
    long_turns: frozenset[int]  # the seqs shown collapsed (``LONG_TURN_BYTES``)

    @property
    def oldest_first(self) -> bool:
        return self.order == ORDER_OLDEST


def _before(session_id: str, seq: int) -> str:
    """A turns cursor for the turns older than ``seq`` (turns_page's own cursor shape)."""
    return keys.cursor_encode(keys.Cursor(kind=TURNS_CURSOR, state={"session": session_id, "before": seq}))


def _window(*, session_id: str, meta, low: int, high: int, order: str) -> Timeline:
    """Turns ``low``..``high`` (one BatchGetItem per 100, through DAX; re-read strongly
    consistent if one is missing — see ``turns_page``)."""
    count = int(meta.turn_count)
    high = min(high, count)
    if high < 1 or low > high:
        return Timeline(turns=[], order=order, low=0, high=0, turn_count=count, cursor=None, newer_after=None,
                        long_turns=frozenset())
    low = max(1, low)
    cursor = _before(session_id, high + 1) if high < count else None
    page = turns_page(session_id=session_id, cursor=cursor, limit=high - low + 1, meta=meta)
    return Timeline(turns=page.turns, order=order, low=low, high=high, turn_count=count, cursor=page.cursor,
                    newer_after=high if high < count else None, long_turns=long_turns(page.turns))


def timeline_read(*, session_id: str, meta, order: str = ORDER_NEWEST, at: int | None = None,
                  down_to: int | None = None, up_to: int | None = None, page: int = DETAIL_TURNS) -> Timeline:
    """The timeline window the page shows.

    - ``at`` (Go to turn N, First turn): ``page`` turns around turn ``at`` (``window_around``) —
      turn 1 of a 10,000-turn session is one page, not 10,000 turns; "Load newer turns" goes on;
    - otherwise the newest turns (or, with ``up_to``, the turns up to that one: the live refresh
      of a window that does not reach the newest turn) down to ``down_to`` if given, in whole
      pages of ``page`` (``detail_turns_for``: what pressing "Load older turns" would have shown).

    Hints out of range are ignored (``at`` past the last turn: the newest page).
    """
    count = int(meta.turn_count)
    if at is not None and 1 <= at <= count:
        low, high = window_around(turn_count=count, at=at, page=page)
        return _window(session_id=session_id, meta=meta, low=low, high=high, order=order)
    high = up_to if up_to is not None and 1 <= up_to < count else count
    limit = detail_turns_for(turn_count=high, down_to=down_to, page=page)
    return _window(session_id=session_id, meta=meta, low=high - limit + 1, high=high, order=order)


@dataclass(frozen=True)
class SessionDetail:
    meta: ItemView  # META decoded without a model (raw.py), strongly consistent
    meta_read: Provenance
    turns: TurnPage  # the timeline's turns, newest first (the admin's page reads these)
    turns_read: Provenance
    summary: Summary | None
    summary_read: Provenance
    summary_state: SummaryState
    presence: Presence
    connections: list[str] | None  # None: Redis unavailable
    presence_read: Provenance
    rate: RateDecision | None  # None: Redis unavailable
    rate_read: Provenance
    timeline: Timeline

    @property
    def connection_ids(self) -> list[str] | None:
        """The session's WebSocket connections: the mapped ones (``connections.py``), and the one
        its presence heartbeat names if that is not among them. None: Redis unavailable."""
        if self.connections is None:
            return None
        ids = list(self.connections)
        if self.presence.connection_id and self.presence.connection_id not in ids:
            ids.append(self.presence.connection_id)
        return ids


def summary_for(*, meta, consistent: bool = False):
    """The summary META points at. A summary never changes once written, so DAX's copy is the
    stored one — but a summary written a moment ago may not be in DAX (or a replica) yet: a miss
    while META names one is asked again strongly consistent."""
    summary = summary_latest(meta=meta, consistent=consistent)
    if summary is None and not consistent and int(meta.summary_through or 0) > 0:
        summary = summary_latest(meta=meta, consistent=True)
    return summary


def session_detail(*, session_id: str, turns: int = DETAIL_TURNS, down_to: int | None = None,
                   order: str = ORDER_NEWEST, at: int | None = None, up_to: int | None = None) -> SessionDetail:
    """META (strongly consistent: see the module docstring), the timeline window
    (``timeline_read``: the newest ``turns`` turns by default), the latest summary, presence and
    the customer's rate window — each with where it was read from and how long it took. The
    page's other panels (hand-off, staff on the session) use this META too: one read of it."""
    with store_read() as t_meta:
        meta = session_view(session_id=session_id, consistent=True)
    with store_read() as t_turns:
        timeline = timeline_read(session_id=session_id, meta=meta, order=timeline_order(order), at=at,
                                 down_to=down_to, up_to=up_to, page=turns)
    with store_read() as t_summary:
        summary = summary_for(meta=meta)
    with redis_read() as t_presence:
        presence = presence_get(session_id=session_id)
        try:
            connections = connections_for_session(session_id=session_id)
        except RedisUnavailable:
            connections = None
    with redis_read() as t_rate:
        rate = rate_limit_peek(customer_id=meta.customer_id)
    page = TurnPage(turns=timeline.turns, cursor=timeline.cursor, turn_count=timeline.turn_count)
    return SessionDetail(
        meta=meta, meta_read=t_meta.provenance, turns=page, turns_read=t_turns.provenance,
        summary=summary, summary_read=t_summary.provenance, summary_state=summary_state(meta=meta),
        presence=presence, connections=connections, presence_read=t_presence.provenance,
        rate=rate, rate_read=t_rate.provenance, timeline=timeline,
    )


# What a timeline request answers: the older page (replaces "Load older turns"), the newer page
# (replaces "Load newer turns"), or the whole window (the live refresh: the timeline's contents).
PART_OLDER, PART_NEWER, PART_WINDOW = "older", "newer", "window"


def session_timeline_part(*, session_id: str, order: str = ORDER_NEWEST, cursor: str = "",
                          after: int | None = None, down_to: int | None = None, up_to: int | None = None,
                          limit: int = DETAIL_TURNS) -> tuple[Timeline, str, Provenance]:
    """One request of the timeline's script or buttons: ``cursor`` → the older page; ``after`` →
    the ``limit`` turns after that seq ("Load newer turns"; META strongly consistent, so the
    newest turn staff were told about is there); neither → the window again (``timeline_read``
    with ``down_to``/``up_to``, META through DAX: the live script asks again while it lags).
    Returns the turns, which part they are, and the read's provenance."""
    order = timeline_order(order)
    with store_read() as timer:
        if cursor:
            page = turns_page(session_id=session_id, cursor=cursor, limit=limit)
            high = page.turns[0].seq if page.turns else 0
            low = page.turns[-1].seq if page.turns else 0
            timeline = Timeline(turns=page.turns, order=order, low=int(low), high=int(high),
                                turn_count=page.turn_count, cursor=page.cursor, newer_after=None,
                                long_turns=long_turns(page.turns))
            part = PART_OLDER
        elif after is not None:
            meta = session_view(session_id=session_id, consistent=True)
            timeline = _window(session_id=session_id, meta=meta, low=after + 1, high=after + limit, order=order)
            part = PART_NEWER
        else:
            meta = session_view(session_id=session_id)
            timeline = timeline_read(session_id=session_id, meta=meta, order=order, down_to=down_to, up_to=up_to,
                                     page=limit)
            part = PART_WINDOW
    return timeline, part, timer.provenance


@dataclass(frozen=True)
class SummaryPanel:
    meta: SessionMeta
    summary: Summary | None
    state: SummaryState
    read: Provenance


def session_summary_panel(*, session_id: str) -> SummaryPanel:
    """META's summary bookkeeping and the latest summary, strongly consistent: the panel polls
    while a regeneration runs and must not show DAX's older copy of META."""
    with store_read() as timer:
        meta = session_get(session_id=session_id, consistent=True)
        summary = summary_latest(meta=meta, consistent=True)
    return SummaryPanel(meta=meta, summary=summary, state=summary_state(meta=meta), read=timer.provenance)


# --- staff looking at a session -----------------------------------------------------------------

@dataclass(frozen=True)
class StaffViewing:
    session_id: str
    owner: str | None  # the hand-off owner's username, and the name shown for them
    owner_name: str | None
    viewers: list[StaffViewer] | None  # most recent first; None: Redis unavailable (unknown)
    read: Provenance


def session_staff_viewing(*, session_id: str, meta: SessionMeta | None = None) -> StaffViewing:
    """Who of the staff has the session's page open (seen within the presence TTL, most recent
    first), with the session's hand-off owner. A read: the page's own ping is
    ``services.staff.staff_viewing_record``.

    A caller that has read META passes it — the console reads it strongly consistent (the detail
    page, its ping), so the owner shown is never older than the hand-off panel's; without it META
    comes through DAX and may lag a take-over by DAX's item TTL. Redis down: ``viewers`` is None —
    "unknown", never "nobody".
    """
    meta = meta if meta is not None else session_get(session_id=session_id)
    with redis_read() as timer:
        viewers = staff_viewing(session_id=session_id)
    return StaffViewing(session_id=session_id, owner=meta.owner or None,
                        owner_name=(meta.owner_name or meta.owner) if meta.owner else None,
                        viewers=viewers, read=timer.provenance)


def session_turn(*, session_id: str, seq: int) -> Turn | None:
    """One turn, strongly consistent (the console shows it right after changing it)."""
    try:
        return Turn.get(keys.session_pk(session_id), keys.turn_sk(int(seq)), consistent_read=True)
    except Turn.DoesNotExist:
        return None


# --- verify ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    panel: str
    field: str
    shown: Any
    consistent: Any


@dataclass(frozen=True)
class VerifyReport:
    session_id: str
    differences: list[Difference]
    shown_read: Provenance
    consistent_read: Provenance
    turns_checked: int

    @property
    def matches(self) -> bool:
        return not self.differences


def _consistent_turns(*, session_id: str, low: int, high: int) -> list[Turn]:
    if high < low:
        return []
    return list(Turn.query(keys.session_pk(session_id), Turn.sk.between(keys.turn_sk(low), keys.turn_sk(high)),
                           consistent_read=True))


def session_verify(*, session_id: str, turns: int = DETAIL_TURNS) -> VerifyReport:
    """Re-read with ConsistentRead (bypassing DAX) what DAX serves — the newest ``turns`` turns
    and the latest summary the page shows, and META as the bot's reads get it (the page itself
    reads META strongly consistent) — and list every field that differs."""
    with store_read() as t_shown:
        meta = session_get(session_id=session_id)
        shown_turns = {int(t.seq): t for t in turns_page(session_id=session_id, limit=turns, meta=meta).turns}
        summary = summary_latest(meta=meta)
    with store_read() as t_fresh:
        fresh_meta = session_get(session_id=session_id, consistent=True)
        count = int(fresh_meta.turn_count)
        fresh_turns = {int(t.seq): t for t in _consistent_turns(session_id=session_id, low=max(1, count - turns + 1), high=count)}
        fresh_summary = summary_latest(meta=fresh_meta, consistent=True)
    diffs: list[Difference] = []
    a, b = session_dict(meta), session_dict(fresh_meta)
    diffs += [Difference("session", k, a[k], b[k]) for k in a if a[k] != b[k]]
    for attr in ("summary_state", "summary_error"):
        if getattr(meta, attr) != getattr(fresh_meta, attr):
            diffs.append(Difference("session", attr, getattr(meta, attr), getattr(fresh_meta, attr)))
    for seq in sorted(set(shown_turns) | set(fresh_turns), reverse=True):
        if seq not in fresh_turns and fresh_turns and seq < min(fresh_turns):
            continue  # older than the consistent window: not compared
        x = turn_dict(shown_turns[seq]) if seq in shown_turns else None
        y = turn_dict(fresh_turns[seq]) if seq in fresh_turns else None
        if x != y:
            diffs.append(Difference("timeline", f"turn #{seq}", "missing" if x is None else x["text"],
                                    "missing" if y is None else y["text"]))
    sa, sb = summary_dict(summary), summary_dict(fresh_summary)
    if sa != sb:
        diffs.append(Difference("summary", "summary", sa and f"turns 1–{sa['through_seq']}", sb and f"turns 1–{sb['through_seq']}"))
    return VerifyReport(session_id=session_id, differences=diffs, shown_read=t_shown.provenance,
                        consistent_read=t_fresh.provenance, turns_checked=len(fresh_turns))
