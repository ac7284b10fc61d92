"""Reads. No selector issues a Scan: every listing is a Query on the table or an index."""

from .context import ContextLoad, context_load
from .listing import SessionPage, session_list
from .presenters import json_bytes, session_dict, summary_dict, turn_dict
from .sessions import Context, TurnPage, context_read, session_get, session_get_many, summary_latest, turns_page

__all__ = [
    "Context",
    "ContextLoad",
    "context_load",
    "json_bytes",
    "session_dict",
    "summary_dict",
    "turn_dict",
    "SessionPage",
    "TurnPage",
    "context_read",
    "session_get",
    "session_get_many",
    "session_list",
    "summary_latest",
    "turns_page",
]
