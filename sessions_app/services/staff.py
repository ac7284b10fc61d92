"""Staff actions on sessions from the console and the admin: close, regenerate a summary, the
audit row of an export, and the detail page's "I have this open" ping. (Privacy deletes: ``privacy.py``; the audit log: ``audit.py``.)

Every action writes one audit row, also when it fails (see ``audit.audited``).
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from ..models import AuditLog, SessionMeta
from ..realtime import staff_viewing_ping
from ..selectors.sessions import session_get
from .audit import audit_record, audited
from .sessions import session_close, session_home_check
from .summaries import summary_request


def staff_session_close(*, actor: AbstractBaseUser, session_id: str) -> tuple[SessionMeta, bool]:
    """Close the session (idempotent), audited. ``session_close`` itself drops the cached bot
    context and clears presence, for every entry point."""
    with audited(actor=actor, action="session_close", session_id=session_id) as audit:
        meta, changed = session_close(session_id=session_id)
        audit.customer_id = meta.customer_id
        audit.detail["changed"] = changed
    return meta, changed


def staff_summary_request(*, actor: AbstractBaseUser, session_id: str) -> str | None:
    """Ask the summary service for a fresh summary. Returns the task id, or None when the broker
    could not take the task (audited as "not_queued"; the summary sweep will ask again)."""
    with audited(actor=actor, action="summary_request", session_id=session_id) as audit:
        meta = session_get(session_id=session_id)  # a missing session is a 404, not a queued task
        audit.customer_id = meta.customer_id
        session_home_check(meta)  # the summary's META bookkeeping is a write like any other
        task_id = summary_request(session_id=session_id, reason="staff")
        audit.detail["task_id"] = task_id
        if task_id is None:
            audit.outcome = "not_queued"
    return task_id


def staff_export_record(*, actor: AbstractBaseUser, fmt: str, scope: str, session_id: str = "",
                        customer_id: str = "", filters: dict | None = None) -> AuditLog:
    """Audit an export before it streams (a stream that breaks half-way has still exposed data)."""
    return audit_record(actor=actor, action=f"export_{fmt}", outcome="streamed", session_id=session_id,
                        customer_id=customer_id, detail={"scope": scope, "filters": filters or {}})


def staff_viewing_record(*, session_id: str, username: str, meta: SessionMeta | None = None) -> SessionMeta:
    """``username`` has the session's page open: a short-lived Redis mark on Redis time
    (``realtime.staff_presence``, 60 s TTL, dropped by the privacy delete) — the page's heartbeat,
    not a change of the session, so it is not audited. META is read first (or passed by a caller
    that has it), so a session that does not exist raises ``SessionNotFound`` and leaves no mark;
    Redis down: no mark (the page then says "unknown"). Returns META for the read that follows."""
    meta = meta if meta is not None else session_get(session_id=session_id)
    staff_viewing_ping(session_id=session_id, username=username)
    return meta
