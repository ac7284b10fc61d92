"""Every time the console and the admin show, in one format: ``2026-12-07 15:04:05 JST`` — in
the time zone active for the request (the staff member's choice: ``dashboard.timezone``'s
middleware activates it; ``UTC`` otherwise), with the zone's abbreviation, or its UTC offset
(``UTC+04:00``) where the zone has no letters for it (tz data writes ``+04`` then)."""

from __future__ import annotations

import functools
import zoneinfo
from datetime import datetime, timezone as dt_timezone

from django.utils import timezone

FORMAT = "%Y-%m-%d %H:%M:%S"
MAX_ZONE_CHARS = 64


@functools.cache
def available_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def zone_valid(name: object) -> bool:
    """A zone name of the IANA database as this machine has it (``zoneinfo``)."""
    return isinstance(name, str) and 0 < len(name) <= MAX_ZONE_CHARS and name in available_zones()


def zone_label(local: datetime) -> str:
    abbr = local.tzname() or ""
    if abbr and abbr[0] not in "+-" and not abbr[0].isdigit():
        return abbr
    offset = local.utcoffset()
    if offset is None:
        return "UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def when_format(value: object, zone=None) -> str:
    """``value`` (an aware datetime; a naive one is taken as UTC) in ``zone`` (default: the
    active time zone) as ``YYYY-MM-DD HH:MM:SS ZONE``; "" for None or anything not a datetime."""
    if not isinstance(value, datetime):
        return ""
    if timezone.is_naive(value):
        value = value.replace(tzinfo=dt_timezone.utc)
    local = value.astimezone(zone or timezone.get_current_timezone())
    return f"{local.strftime(FORMAT)} {zone_label(local)}"
