"""A staff member's console preferences: the time zone every time is shown in."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from ..timezones import zone_valid


def validate_time_zone(value: str) -> None:
    if not zone_valid(value):
        raise ValidationError("%(value)s is not a time zone of the IANA database (e.g. Asia/Tokyo, UTC).",
                              code="invalid_time_zone", params={"value": value})


class StaffProfile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="staff_profile")
    # "": not chosen yet — the console shows UTC and the browser's zone is proposed once
    # (dashboard/static/dashboard/time-zone.js).
    time_zone = models.CharField(max_length=64, blank=True, default="", validators=[validate_time_zone])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "staff profile"

    def __str__(self) -> str:
        return f"{self.user} ({self.time_zone or 'no time zone chosen'})"
