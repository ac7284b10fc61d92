"""Plain builder functions for tests (no fixtures, no magic)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

from sessions_app import services


def make_session(*, customer_id: str = "cust-1", channel: str = "web", locale: str = "en", turns: int = 0,
                 started_at: datetime | None = None, status: str = "active", session_id: str | None = None):
    meta, _ = services.session_start(customer_id=customer_id, channel=channel, locale=locale,
                                     started_at=started_at, status=status, session_id=session_id)
    for n in range(1, turns + 1):
        role = "user" if n % 2 else "assistant"
        services.turn_write(session_id=meta.session_id, role=role, text=f"turn {n} text", client_msg_id=f"m-{n}")
    return meta


def msg_id() -> str:
    return uuid.uuid4().hex


def at(day: str, minute: int = 0) -> datetime:
    """A UTC moment on ``day`` (YYYY-MM-DD), ``minute`` minutes after 08:00."""
    base = datetime.fromisoformat(day).replace(hour=8, tzinfo=timezone.utc)
    return base + timedelta(minutes=minute)
