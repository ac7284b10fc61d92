"""Per-request time zones: every time the console and the admin render is in the signed-in staff
member's chosen zone (``StaffProfile.time_zone``), formatted by ``sessions_app.timezones``.

``TimeZoneMiddleware`` (after the authentication middleware) activates the zone for the request
and deactivates it afterwards; without a chosen zone (or for an anonymous request) times stay in
UTC. ``request.staff_time_zone`` is the zone chosen ("" none yet: the header's picker then loads
``time-zone.js``, which proposes the browser's zone once).
"""

from __future__ import annotations

import zoneinfo

from django import forms
from django.utils import timezone

from sessions_app.selectors.profile import staff_time_zone
from sessions_app.timezones import MAX_ZONE_CHARS, zone_valid

# Offered in the picker's list (any IANA zone may be typed).
COMMON_ZONES = ("UTC", "Asia/Tokyo", "Asia/Seoul", "Asia/Shanghai", "Asia/Singapore", "Asia/Kolkata",
                "Australia/Sydney", "Europe/London", "Europe/Paris", "Europe/Berlin", "America/New_York",
                "America/Chicago", "America/Denver", "America/Los_Angeles", "Pacific/Honolulu")


class TimeZoneMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        zone = ""
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            zone = staff_time_zone(user_id=user.pk)
        request.staff_time_zone = zone if zone_valid(zone) else ""
        if request.staff_time_zone:
            timezone.activate(zoneinfo.ZoneInfo(request.staff_time_zone))
        else:
            timezone.deactivate()
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


class TimeZoneForm(forms.Form):
    time_zone = forms.CharField(max_length=MAX_ZONE_CHARS, strip=True, label="Time zone")
    next = forms.CharField(required=False, max_length=2000)
    # "browser": time-zone.js proposing the browser's zone: applied only while none is chosen.
    source = forms.ChoiceField(choices=[("form", "form"), ("browser", "browser")], required=False)

    def clean_time_zone(self) -> str:
        value = self.cleaned_data["time_zone"]
        if not zone_valid(value):
            raise forms.ValidationError(f"{value} is not a time zone of the IANA database (e.g. Asia/Tokyo, UTC).",
                                        code="invalid_time_zone")
        return value
