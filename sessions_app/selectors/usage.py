"""Per-session usage for the console: the aggregates META records (sessions_app/usage.py), or —
for a session whose record does not cover every turn (it predates the record, or was loaded in
bulk) — computed from its turns when they are few enough to read at once."""

from __future__ import annotations

from ..usage import SessionAggregates, aggregates_from_usage, meta_aggregates, usage_from_turns
from .sessions import TurnPage, turns_page

# A session without a complete record is aggregated from its turns up to this many (one page
# read, turns_page's bound); beyond, the page shows what the record covers and says so.
LAZY_MAX_TURNS = 500


def session_aggregates(*, meta, turns: TurnPage | None = None) -> SessionAggregates:
    """The session's aggregates. ``turns``: a page the caller has read already (newest first),
    used instead of a read when it holds every turn."""
    recorded = meta_aggregates(meta)
    count = int(meta.turn_count or 0)
    if recorded.complete or not 0 < count <= LAZY_MAX_TURNS:
        return recorded
    if turns is None or turns.cursor is not None or len(turns.turns) < count:
        turns = turns_page(session_id=meta.session_id, limit=count, meta=meta)
    usage = usage_from_turns(sorted(turns.turns, key=lambda t: int(t.seq)))
    return aggregates_from_usage(usage, turn_count=count, last_message_at=meta.last_message_at, state="computed")
