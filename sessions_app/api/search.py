"""GET /search: transcript search over turns and summaries, with the session list's filters.

The filters are the listing's (same names, same parsing, validated by ``SessionFilter``), but a
search has no default day range: it covers everything the index holds. Hits come grouped by
session; each turn carries a plain-text ``snippet`` around its first match and the ``highlights``
inside it (never markup: chat text is user input). Paging is by ``cursor`` only, no total count.
The index is fed by the change feed, so a turn is found a moment after it was written, not at once.
"""

# No `from __future__ import annotations` here: query_strict wraps the view, and ninja
# evaluates string annotations in the wrapper's module, where these schemas are not defined.
from datetime import date
from typing import Literal

from django.http import HttpRequest
from ninja import Query, Router
from pydantic import BaseModel, Field

from ..ids import ID_PATTERN
from ..models import CHANNELS, SessionStatus
from ..search.engine import NEWEST, ORDERS, SUMMARY, TURN
from ..search.results import TurnMatch
from ..selectors.filters import SessionFilter
from ..selectors.listing import MAX_DAYS
from ..selectors.search import QUERY_MAX_CHARS, SEARCH_PAGE, SEARCH_PAGE_MAX, transcript_search
from .auth import READ
from .errors_openapi import errors
from .params import query_strict

router = Router(tags=["search"])

FILTERS = ("day_from", "day_to", "customer_id", "status", "channel")


class SearchTurnOut(BaseModel):
    seq: int = Field(description="The turn's seq; for a summary, the last turn it covers (its through_seq).")
    role: str = Field(description="user / assistant / system / agent, or summary for a summary.")
    kind: Literal[TURN, SUMMARY] = Field(  # type: ignore[valid-type]
        description="turn, or summary (the session's summary matched).")
    created_at: str = Field(description="When the turn (or summary) was written, ISO 8601 UTC.")
    snippet: str = Field(description="Plain text around the first match (cut with … where it was cut); never markup.")
    highlights: list[tuple[int, int]] = Field(description=(
        "The matched parts of `snippet` as [start, end) offsets in Unicode code points (Python string "
        "indices, not UTF-16 units)."))


class SearchSessionOut(BaseModel):
    session_id: str
    customer_id: str
    channel: str
    turns: list[SearchTurnOut] = Field(description="This page's matching turns of the session, in the page's order.")


class SearchOut(BaseModel):
    results: list[SearchSessionOut] = Field(description=(
        "Sessions in the order of their first hit on this page; `limit` counts matching turns, not sessions, "
        "and a session may come again on the next page with more of its turns."))
    cursor: str | None = Field(
        description="Pass it back (with the same q, filters and order) for the next page; null at the end.")


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _turn_out(turn: TurnMatch) -> dict:
    snippet, highlights, at = [], [], 0
    for text, matched in turn.snippet:
        if matched:
            highlights.append((at, at + len(text)))
        snippet.append(text)
        at += len(text)
    return {"seq": turn.seq, "role": turn.role, "kind": turn.kind,
            "created_at": _iso(turn.created_at), "snippet": "".join(snippet), "highlights": highlights}


@router.get("/search", operation_id="transcript_search", summary="Search transcripts", auth=READ,
            response={200: SearchOut, **errors(400, 401, 403, 503)})
@query_strict("q", *FILTERS, "order", "cursor", "limit")
def transcript_search_view(
    request: HttpRequest,
    q: str = Query(..., max_length=QUERY_MAX_CHARS, description=(
        "Words, numbers or Japanese text; every part must match (ＯＮＥ ＰＩＥＣＥ = one piece, 105巻 holds 105, "
        "a single kanji matches wherever it stands).")),
    day_from: date | None = Query(None, description=(
        f"First UTC day of the session's start (default: no bound). A range spans at most {MAX_DAYS} days; "
        "without day_to it is counted to today.")),
    day_to: date | None = Query(None, description="Last UTC day of the session's start (default: no bound)."),
    customer_id: str | None = Query(None, pattern=ID_PATTERN, description="Only this customer's sessions."),
    status: Literal[SessionStatus.ALL] | None = Query(None),  # type: ignore[valid-type]
    channel: Literal[CHANNELS] | None = Query(None),  # type: ignore[valid-type]
    order: Literal[ORDERS] = Query(  # type: ignore[valid-type]
        NEWEST, description="newest (the turn's time) or relevance (the engine's rank)."),
    cursor: str | None = Query(None, description="The `cursor` of the previous page."),
    limit: int | None = Query(None, ge=1, le=SEARCH_PAGE_MAX, description=(
        f"Matching turns per page, at most {SEARCH_PAGE_MAX} (default {SEARCH_PAGE}).")),
):
    """Search the transcripts: every matching turn (and summary), grouped by session, newest
    first or by relevance. The index follows the change feed, so a turn appended a moment ago
    may not be found yet."""
    filters = SessionFilter(day_from=day_from, day_to=day_to, customer_id=customer_id, status=status, channel=channel)
    found = transcript_search(query=q, filters=filters, order=order, cursor=cursor or None, limit=limit or SEARCH_PAGE)
    return {
        "results": [{"session_id": s.session_id, "customer_id": s.customer_id, "channel": s.channel,
                     "turns": [_turn_out(t) for t in s.turns]} for s in found.sessions],
        "cursor": found.cursor,
    }
