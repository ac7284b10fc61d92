"""The staff audit log: one ``AuditLog`` row per staff action — who, what, which session or
customer, when, outcome — also when the action fails or is refused, so the log answers "who
tried what" and not only "what succeeded". The console, the admin and the access policy all
write through here.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from ..models import AuditLog


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    outcome: str,
    session_id: str = "",
    customer_id: str = "",
    detail: dict | None = None,
) -> AuditLog:
    """Append one audit row. ``actor_username`` is copied so the row survives the user's deletion."""
    return AuditLog.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_username=getattr(actor, "username", "") or "",
        action=action,
        outcome=outcome[:20],
        session_id=session_id or "",
        customer_id=customer_id or "",
        detail=detail or {},
    )


class audited:  # noqa: N801 - used as a statement: ``with audited(...) as audit:``
    """Write one audit row when the block ends: outcome "ok" unless the block changed it, or
    "error" with the exception's code and message (the exception still propagates). The block
    may fill in ``customer_id`` and ``detail`` as it learns them."""

    def __init__(self, *, actor, action: str, session_id: str = "", customer_id: str = "", detail: dict | None = None):
        self.actor, self.action, self.session_id = actor, action, session_id
        self.customer_id = customer_id
        self.outcome = "ok"
        self.detail = dict(detail or {})

    def __enter__(self) -> audited:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is not None:
            code = getattr(exc, "code", type(exc).__name__)
            self.outcome = "error"
            self.detail["error"] = f"{code}: {getattr(exc, 'message', exc)}"[:500]
        audit_record(actor=self.actor, action=self.action, outcome=self.outcome, session_id=self.session_id,
                     customer_id=self.customer_id, detail=self.detail)
        return False
