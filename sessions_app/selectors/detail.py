"""One session for staff: the detail page, older timeline pages, the summary panel, who of the
staff is looking at it, one turn re-read, and "Verify against DynamoDB" (a ConsistentRead re-read
of what the page shows).

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
from .sessions import TurnPage, session_get, session_view, summary_latest, turns_page
from .summaries import SummaryState, summary_state

DETAIL_TURNS = 50
# The most turns the page renders to reach a turn a search result links to (``?turn=``); one
# Query (``turns_page``'s bound). Older than that, the page's script loads older pages itself.
DETAIL_FIND_MAX_TURNS = 500


def detail_turns_for(*, turn_count: int, down_to: int | None, page: int = DETAIL_TURNS) -> int:
    """How many of the newest turns the timeline shows so that turn ``down_to`` is among them:
    whole pages of ``page`` turns (what pressing "Load older turns" would have shown), at most
    ``DETAIL_FIND_MAX_TURNS``. No ``down_to`` (or none in range): one page."""
    if down_to is None or not 1 <= down_to <= turn_count or turn_count - down_to < page:
        return page
    pages = -(-(turn_count - down_to + 1) // page)  # ceil
    return max(page, min(pages, DETAIL_FIND_MAX_TURNS // page) * page)


@dataclass(frozen=True)
class SessionDetail:
    meta: ItemView  # META decoded without a model (raw.py): the page's hot read
    meta_read: Provenance
    turns: TurnPage
    turns_read: Provenance
    summary: Summary | None
    summary_read: Provenance
    summary_state: SummaryState
    presence: Presence
    connections: list[str] | None  # None: Redis unavailable
    presence_read: Provenance
    rate: RateDecision | None  # None: Redis unavailable
    rate_read: Provenance


def session_detail(*, session_id: str, turns: int = DETAIL_TURNS, down_to: int | None = None) -> SessionDetail:
    """META, the newest ``turns`` turns (down to turn ``down_to`` if given: see
    ``detail_turns_for``), the latest summary, presence and the customer's rate window — each
    with where it was read from and how long it took."""
    with store_read() as t_meta:
        meta = session_view(session_id=session_id)
    with store_read() as t_turns:
        limit = detail_turns_for(turn_count=int(meta.turn_count), down_to=down_to, page=turns)
        page = turns_page(session_id=session_id, limit=limit, meta=meta)
    with store_read() as t_summary:
        summary = summary_latest(meta=meta)
    with redis_read() as t_presence:
        presence = presence_get(session_id=session_id)
        try:
            connections = connections_for_session(session_id=session_id)
        except RedisUnavailable:
            connections = None
    with redis_read() as t_rate:
        rate = rate_limit_peek(customer_id=meta.customer_id)
    return SessionDetail(
        meta=meta, meta_read=t_meta.provenance, turns=page, turns_read=t_turns.provenance,
        summary=summary, summary_read=t_summary.provenance, summary_state=summary_state(meta=meta),
        presence=presence, connections=connections, presence_read=t_presence.provenance,
        rate=rate, rate_read=t_rate.provenance,
    )


def session_turns_older(*, session_id: str, cursor: str, limit: int = DETAIL_TURNS,
                        down_to: int | None = None) -> tuple[TurnPage, Provenance]:
    """The next older page of the timeline (the cursor comes from the previous page). Without a
    cursor: the newest page, or — with ``down_to`` — the newest turns down to that one (the live
    refresh of a page that shows older turns keeps showing them)."""
    with store_read() as timer:
        if cursor or down_to is None:
            page = turns_page(session_id=session_id, cursor=cursor, limit=limit)
        else:
            meta = session_view(session_id=session_id)
            page = turns_page(session_id=session_id, meta=meta,
                              limit=detail_turns_for(turn_count=int(meta.turn_count), down_to=down_to, page=limit))
    return page, timer.provenance


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

    META comes through DAX: the owner may lag a take-over by DAX's item TTL, and the next ping
    catches up; a caller that has read META passes it. Redis down: ``viewers`` is None —
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
    """Re-read what the session page shows with ConsistentRead (bypassing DAX) and list every
    field that differs: META, the newest ``turns`` turns and the latest summary."""
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
