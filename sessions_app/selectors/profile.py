"""A staff member's preferences (``StaffProfile``)."""

from __future__ import annotations

from ..models import StaffProfile


def staff_time_zone(*, user_id: int) -> str:
    """The zone the staff member chose, "" when none yet (one indexed lookup)."""
    return StaffProfile.objects.filter(user_id=user_id).values_list("time_zone", flat=True).first() or ""
