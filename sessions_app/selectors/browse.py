"""Browsing sessions: the staff list, the customer page and the API listing, through one
``SessionFilter``.

The index-served filters go to ``listing.session_list`` (a Query, never a Scan); the summary state
is not indexed, so it is derived per session (``summaries.summary_state``) and applied to each
page read. "Online now" lists from the presence set instead, the authority on who is online, and
"mine" (``owner``) from the by_owner index (``handoff.sessions_owned``), the one on who holds what.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from .. import keys
from ..clock import utcnow
from ..models import SessionMeta, Summary
from ..realtime import Presence, presence_get_many, presence_online
from .filters import SessionFilter
from .handoff import sessions_owned
from .listing import session_list
from .provenance import elapsed_ms, redis_read
from .sessions import session_get_many
from .summaries import SummaryState, summary_state

ONLINE_MAX = 200
MAX_CALLS = 5


@dataclass(frozen=True)
class Match:
    meta: SessionMeta
    summary: SummaryState


@dataclass(frozen=True)
class MatchPage:
    matches: list[Match]
    cursor: str | None  # None: the listing is complete
    short_reason: str | None  # set when the page is short for a reason other than the end
    examined: int  # sessions read from the store for this page (before the summary filter)
    source: str  # "index", "presence" or "owner"
    elapsed_ms: float


def page_size(limit: int | None) -> int:
    """``limit``, or the configured page size (``PAGE_SIZE``) when the caller did not choose."""
    return settings.PAGE_SIZE if limit is None else limit


def session_find(*, filters: SessionFilter = SessionFilter(), cursor: str | None = None, limit: int | None = None,
                 max_calls: int = MAX_CALLS) -> MatchPage:
    """One page of the sessions matching ``filters``, newest first.

    With a summary-state filter the list is read on (at most ``max_calls`` listing calls, each
    asking only for as many sessions as are still missing, so the cursor stays exact) — a page
    that runs out of that budget comes back short with a cursor and says why.
    """
    limit = page_size(limit)
    started = time.perf_counter()
    now = utcnow()  # one clock for the page: every row's pending/stale cut-off is the same
    if filters.online:
        return _find_online(filters=filters, now=now, started=started)
    if filters.owner:
        return _find_owned(filters=filters, now=now, started=started)
    found: list[Match] = []
    examined = calls = 0
    short_reason = None
    while True:
        page = session_list(**filters.listing_kwargs(), cursor=cursor, limit=limit - len(found))
        calls += 1
        examined += len(page.sessions)
        for meta in page.sessions:
            state = summary_state(meta=meta, now=now)
            if filters.summary_state in (None, state.state):
                found.append(Match(meta, state))
        cursor = page.cursor
        if page.short_reason:
            short_reason = page.short_reason
            break
        if len(found) >= limit or cursor is None:
            break
        if calls >= max_calls:
            short_reason = f"read budget reached: {examined} sessions examined, {len(found)} matched the summary filter"
            break
    return MatchPage(matches=found, cursor=cursor, short_reason=short_reason, examined=examined, source="index",
                     elapsed_ms=elapsed_ms(started))


def _find_online(*, filters: SessionFilter, now: datetime, started: float) -> MatchPage:
    with redis_read():
        ids = presence_online(limit=ONLINE_MAX + 1)
    if ids is None:
        return MatchPage(matches=[], cursor=None, short_reason="presence is unknown: Redis is unavailable",
                         examined=0, source="presence", elapsed_ms=elapsed_ms(started))
    truncated = len(ids) > ONLINE_MAX
    metas = session_get_many(session_ids=ids[:ONLINE_MAX])
    matched = []
    for meta in metas:
        state = summary_state(meta=meta, now=now)
        if filters.matches(meta, summary_state=state.state):
            matched.append(Match(meta, state))
    matched.sort(key=lambda match: match.meta.started_at, reverse=True)
    reason = f"only the {ONLINE_MAX} most recently active online sessions are examined" if truncated else None
    return MatchPage(matches=matched, cursor=None, short_reason=reason, examined=len(metas), source="presence",
                     elapsed_ms=elapsed_ms(started))


def _find_owned(*, filters: SessionFilter, now: datetime, started: float) -> MatchPage:
    """The sessions ``filters.owner`` holds now (one by_owner Query and a BatchGetItem; fresh META
    drops one handed back since), the other filters applied to each, newest take-over first."""
    metas = sessions_owned(username=filters.owner)
    matched = []
    for meta in metas:
        state = summary_state(meta=meta, now=now)
        if filters.matches(meta, summary_state=state.state):
            matched.append(Match(meta, state))
    return MatchPage(matches=matched, cursor=None, short_reason=None, examined=len(metas), source="owner",
                     elapsed_ms=elapsed_ms(started))


# --- the console's rows ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SessionRow:
    meta: SessionMeta
    summary: SummaryState
    presence: Presence
    summary_snippet: str | None


@dataclass(frozen=True)
class BrowsePage:
    rows: list[SessionRow]
    cursor: str | None
    short_reason: str | None
    examined: int
    source: str
    elapsed_ms: float


def session_browse(*, filters: SessionFilter = SessionFilter(), cursor: str | None = None, limit: int | None = None,
                   max_calls: int = MAX_CALLS) -> BrowsePage:
    """One page of the staff sessions list: ``session_find`` plus each row's presence (one Redis
    round trip for the page) and the start of its latest summary (one BatchGetItem)."""
    page = session_find(filters=filters, cursor=cursor, limit=limit, max_calls=max_calls)
    return BrowsePage(rows=_rows(page.matches), cursor=page.cursor, short_reason=page.short_reason,
                      examined=page.examined, source=page.source, elapsed_ms=page.elapsed_ms)


def _summaries_for(metas: list[SessionMeta]) -> dict[str, Summary]:
    wanted = [(m.pk, keys.summary_sk(int(m.summary_through))) for m in metas if int(m.summary_through or 0) > 0]
    if not wanted:
        return {}
    return {keys.session_id_from_pk(s.pk): s for s in Summary.batch_get(wanted)}


def _rows(matches: list[Match]) -> list[SessionRow]:
    metas = [match.meta for match in matches]
    summaries = _summaries_for(metas)
    with redis_read():
        presences = presence_get_many(session_ids=[meta.session_id for meta in metas])
    rows = []
    for match in matches:
        summary = summaries.get(match.meta.session_id)
        rows.append(SessionRow(meta=match.meta, summary=match.summary, presence=presences[match.meta.session_id],
                               summary_snippet=summary.text[:140] if summary else None))
    return rows
