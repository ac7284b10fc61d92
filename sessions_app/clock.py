"""The one clock: timezone-aware UTC, so every stored time and key compares the same way."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
