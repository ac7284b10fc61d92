"""The idle close: open sessions nobody has written to for ``SESSION_IDLE_CLOSE_MINUTES`` are
closed by the beat sweep (``sessions_app.sessions_idle_close``, every 5 minutes), with reason
``idle`` — audited like a staff close, and summarised like every close.

Which sessions:

* **open** ones — active, or handed off and *waiting* for a human — whose last activity
  (``selectors.idle.session_last_activity``: the last turn, else the start; for a waiting
  hand-off not before the request) is older than the cutoff;
* **not one a staff member owns.** An owned session is the owner's to close or hand back; their
  silence is handled by the hand-off lapse (``HANDOFF_IDLE_MINUTES``), which returns the session
  to the queue unowned — after which this sweep may close it once it has been idle long enough.
  Closing under an owner would end a conversation a person is in the middle of.
* only in the session's home region (another region's replica is its own sweep's).

How: candidates come from the ``by_status`` index (sessions started before the cutoff only), their
META from a strongly consistent BatchGetItem; each close is one conditional UpdateItem
(``services.sessions.session_close_if_idle``), so a turn that lands between the read and the
close wins and the session stays open. Bounded: at most ``IDLE_CLOSE_BATCH`` candidates examined per run,
oldest first, read in pages of 100; the report says when there were more (the next run, 5 minutes later, goes on — the
ones closed have left the index). Idempotent: a second run finds the closed sessions gone from
the index, and closes nothing twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings

from .. import keys
from ..clock import utcnow
from ..models import SessionStatus
from ..selectors.idle import idle_close_candidates, session_last_activity
from .audit import audit_record
from .sessions import session_close_if_idle

log = logging.getLogger(__name__)

# Candidates examined per run, read 100 at a time (a BatchGetItem each): long-lived busy sessions
# are walked past, not re-read every run; beyond this many the rest wait for the next run.
IDLE_CLOSE_BATCH = 20_000
CLOSE_REASON = "idle"


@dataclass
class IdleCloseReport:
    closed: list[str] = field(default_factory=list)
    owned: list[str] = field(default_factory=list)  # idle, but a staff member owns it: left to them
    moved: list[str] = field(default_factory=list)  # written (or taken over) between the read and the close
    more: bool = False  # candidates were left for the next run


def sessions_idle_close(*, now: datetime | None = None, limit: int = IDLE_CLOSE_BATCH) -> IdleCloseReport:
    """Close the open sessions idle since before ``now`` − ``SESSION_IDLE_CLOSE_MINUTES`` (see the
    module docstring). Each close writes one audit row (action ``session_close``, no actor, detail
    ``reason: idle`` and the activity it was idle since)."""
    now = now or utcnow()
    idle_before = now - timedelta(minutes=settings.SESSION_IDLE_CLOSE_MINUTES)
    report = IdleCloseReport()
    for candidates, more in idle_close_candidates(started_before=idle_before, limit=limit):
        report.more = more
        for meta in candidates:
            last_activity = session_last_activity(meta)
            # Closed already: the index (a GSI, eventually consistent) had not caught up with its close.
            if meta.status == SessionStatus.CLOSED or last_activity >= idle_before or not meta.writable_here:
                continue
            if meta.owner:
                report.owned.append(meta.session_id)
                continue
            status = meta.status  # the close updates meta in place
            if not session_close_if_idle(meta=meta, idle_before=idle_before):
                report.moved.append(meta.session_id)
                continue
            audit_record(actor=None, action="session_close", outcome="ok", session_id=meta.session_id,
                         customer_id=meta.customer_id,
                         detail={"reason": CLOSE_REASON, "changed": True, "status_before": status,
                                 "idle_since": keys.ts_str(last_activity),
                                 "idle_close_minutes": settings.SESSION_IDLE_CLOSE_MINUTES})
            report.closed.append(meta.session_id)
    if report.more:
        log.warning("idle close: more than %d candidates; the rest wait for the next run", limit)
    return report
