"""Transcript search as the console and the API read it: validate the query, ask the engine
(with the session list's filters), group the hits by session with snippets, and say how current
the index is. docs/architecture.md §Search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..clock import utcnow
from ..exceptions import InvalidInput
from ..search import search_engine
from ..search.engine import NEWEST, SearchFilter, check_order
from ..search.results import SessionMatches, group_by_session
from ..search.text import query_clauses
from .filters import SessionFilter

QUERY_MAX_CHARS = 200
SEARCH_PAGE = 50  # matching turns per page (grouped by session, so fewer groups)
SEARCH_PAGE_MAX = 200


@dataclass(frozen=True)
class IndexStatus:
    engine: str
    newest_change_at: datetime | None  # the newest change the index reflects
    sessions: int

    @property
    def lag_seconds(self) -> float | None:
        """Newest indexed change vs now: how far behind the index could be (it is also this
        large when nothing changed lately — the page says "newest change indexed", not "behind")."""
        if self.newest_change_at is None:
            return None
        return max(0.0, (utcnow() - self.newest_change_at).total_seconds())


@dataclass(frozen=True)
class SearchResults:
    query: str
    order: str
    sessions: list[SessionMatches]
    cursor: str | None  # the next page; None at the end


def search_filter(session_filter: SessionFilter | None) -> SearchFilter:
    """The list filters a search combines with (validated by ``SessionFilter``). Only the days
    given count: unlike the list, a search has no default day range — it covers everything the
    index holds."""
    f = session_filter or SessionFilter()
    return SearchFilter(day_from=f.day_from, day_to=f.day_to, channel=f.channel, status=f.status,
                        customer_id=f.customer_id)


def query_check(query: str | None) -> str:
    query = (query or "").strip()
    if not query:
        raise InvalidInput("type something to search for", field="q")
    if len(query) > QUERY_MAX_CHARS:
        raise InvalidInput(f"a search is at most {QUERY_MAX_CHARS} characters", field="q")
    if not query_clauses(query):
        raise InvalidInput("the search has no letters, digits or Japanese text in it", field="q")
    return query


def transcript_search(*, query: str, filters: SessionFilter | None = None, order: str = NEWEST,
                      cursor: str | None = None, limit: int = SEARCH_PAGE) -> SearchResults:
    query = query_check(query)
    check_order(order)
    if not 1 <= limit <= SEARCH_PAGE_MAX:
        raise InvalidInput(f"limit must be 1-{SEARCH_PAGE_MAX}", field="limit")
    page = search_engine().search(query, filters=search_filter(filters), order=order, limit=limit, cursor=cursor)
    return SearchResults(query=query, order=order, sessions=group_by_session(page.hits, query), cursor=page.cursor)


def search_index_status() -> IndexStatus:
    engine = search_engine()
    state = engine.state()
    return IndexStatus(engine=engine.name, newest_change_at=state.newest_change_at, sessions=state.sessions)
