"""Changing a staff member's own preferences.

Not audited: the audit log records what staff do to sessions and customers; a staff member
choosing the zone their own console shows times in changes nothing anyone else sees.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError

from ..exceptions import InvalidInput
from ..models import StaffProfile
from ..models.profile import validate_time_zone


def staff_time_zone_set(*, user, time_zone: str) -> StaffProfile:
    """Store ``time_zone`` (an IANA zone name; ``InvalidInput`` otherwise) as ``user``'s."""
    try:
        validate_time_zone(time_zone)
    except ValidationError as exc:
        raise InvalidInput(" ".join(exc.messages), field="time_zone") from None
    profile, _ = StaffProfile.objects.update_or_create(user=user, defaults={"time_zone": time_zone})
    return profile
