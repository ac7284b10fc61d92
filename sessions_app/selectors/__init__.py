"""Reads. No selector issues a Scan: every listing is a Query on the table or an index."""

from .listing import SessionPage, session_list
from .sessions import Context, TurnPage, context_read, session_get, summary_latest, turns_page

__all__ = [
    "Context",
    "SessionPage",
    "TurnPage",
    "context_read",
    "session_get",
    "session_list",
    "summary_latest",
    "turns_page",
]
