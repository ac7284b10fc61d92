"""Who may see and do what with chat sessions, in the console and the admin alike.

Three permissions (declared on ``AuditLog``): ``view_chat_sessions`` for reading,
``operate_chat_sessions`` for actions (close, summarise, export, delete, forcing a hand-back), and
``handle_chat_sessions`` for the hand-off (take a session over, reply as staff, hand it back).
Staff get them through the Viewer / Supervisor groups (migration 0002) and the Agent group
(migration 0005; Supervisors also handle). An account must also be active and staff: a
deactivated or demoted account loses access even if a group still grants the permission. A
refused action is audited.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from .services.audit import audit_record

VIEW = "sessions_app.view_chat_sessions"
OPERATE = "sessions_app.operate_chat_sessions"
HANDLE = "sessions_app.handle_chat_sessions"


def staff_allowed(*, user, perm: str) -> bool:
    """The one policy check."""
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return user.has_perm(perm)


def staff_require(*, user, perm: str, action: str, session_id: str = "", customer_id: str = "") -> None:
    """Raise ``PermissionDenied`` (403) unless ``staff_allowed``; a refused action (``OPERATE``,
    ``HANDLE``: anything but reading) is audited as "denied" under ``action``, so the log shows
    who tried."""
    if staff_allowed(user=user, perm=perm):
        return
    if perm != VIEW:
        audit_record(actor=user, action=action, outcome="denied", session_id=session_id, customer_id=customer_id)
    raise PermissionDenied
