"""Time zones: each staff member's zone (StaffProfile), activated per request by the middleware,
set by the header's picker (POST preferences/time-zone/), and one format for every time in the
console and the admin (sessions_app.timezones.when_format)."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, timezone as dt_timezone

from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone

from sessions_app import services
from sessions_app.models import AuditLog, StaffProfile
from sessions_app.timezones import when_format
from tests.builders import at, make_session
from tests.fixtures.staff import staff_user

URL = "/preferences/time-zone/"


def _zone_of(user: User) -> str:
    return StaffProfile.objects.filter(user=user).values_list("time_zone", flat=True).first() or ""


def test_the_route_is_named():
    assert reverse("dashboard:time_zone") == URL


def test_one_format_with_the_zone_abbreviation_or_offset():
    moment = datetime(2026, 12, 7, 6, 4, 5, 123456, tzinfo=dt_timezone.utc)
    assert when_format(moment, zoneinfo.ZoneInfo("UTC")) == "2026-12-07 06:04:05 UTC"
    assert when_format(moment, zoneinfo.ZoneInfo("Asia/Tokyo")) == "2026-12-07 15:04:05 JST"
    assert when_format(moment, zoneinfo.ZoneInfo("America/New_York")) == "2026-12-07 01:04:05 EST"
    # tz data has no letters for Dubai ("+04"): the offset, said as one
    assert when_format(moment, zoneinfo.ZoneInfo("Asia/Dubai")) == "2026-12-07 10:04:05 UTC+04:00"
    assert when_format(moment, zoneinfo.ZoneInfo("Asia/Kolkata")) == "2026-12-07 11:34:05 IST"
    assert when_format(moment.replace(tzinfo=None), zoneinfo.ZoneInfo("Asia/Tokyo")) == "2026-12-07 15:04:05 JST"
    assert when_format(None) == "" and when_format("2026-12-07") == ""


def test_times_are_utc_until_a_zone_is_chosen_then_in_it(console, viewer, viewer_client):
    meta = make_session(started_at=at("2026-11-20"), turns=1)  # 08:00 UTC
    body = viewer_client.get(f"/sessions/{meta.session_id}/").content.decode()
    assert "2026-11-20 08:00:00 UTC" in body
    assert 'data-tz-chosen="0"' in body and "time-zone.js" in body  # the browser's zone will be proposed
    StaffProfile.objects.create(user=viewer, time_zone="Asia/Tokyo")
    body = viewer_client.get(f"/sessions/{meta.session_id}/").content.decode()
    assert "2026-11-20 17:00:00 JST" in body and "08:00:00 UTC" not in body
    assert 'data-tz-chosen="1"' in body and '<b id="tz-current">Asia/Tokyo</b>' in body
    listed = viewer_client.get("/sessions/", {"day_from": "2026-11-20", "day_to": "2026-11-20"}).content.decode()
    assert "2026-11-20 17:00:00 JST" in listed
    # The zone is the request's only: nothing leaks into the next one (or this thread).
    assert timezone.get_current_timezone_name() == "UTC"


def test_each_staff_member_sees_their_own_zone(console, viewer, supervisor, client):
    meta = make_session(started_at=at("2026-11-20"))
    StaffProfile.objects.create(user=viewer, time_zone="Asia/Tokyo")
    StaffProfile.objects.create(user=supervisor, time_zone="Europe/Paris")
    client.force_login(viewer)
    assert "2026-11-20 17:00:00 JST" in client.get(f"/sessions/{meta.session_id}/").content.decode()
    client.force_login(supervisor)
    assert "2026-11-20 09:00:00 CET" in client.get(f"/sessions/{meta.session_id}/").content.decode()


def test_setting_the_zone_stores_it_and_returns_to_the_page(console, viewer, viewer_client):
    response = viewer_client.post(URL, {"time_zone": "Asia/Tokyo", "next": "/sessions/?status=active"})
    assert response.status_code == 302 and response["Location"] == "/sessions/?status=active"
    assert _zone_of(viewer) == "Asia/Tokyo"
    response = viewer_client.post(URL, {"time_zone": "UTC", "next": "https://evil.example/"})
    assert response.status_code == 302 and response["Location"] == "/"  # never off-site
    assert _zone_of(viewer) == "UTC"


def test_an_invalid_zone_is_a_400_with_the_form_error(console, viewer, viewer_client):
    StaffProfile.objects.create(user=viewer, time_zone="Asia/Tokyo")
    for bad in ("Mars/Olympus_Mons", "", "../../etc/passwd", "x" * 65):
        response = viewer_client.post(URL, {"time_zone": bad})
        assert response.status_code == 400, bad
        body = response.content.decode()
        assert 'data-field="time_zone"' in body and 'id="tz-page-form"' in body
    assert "is not a time zone of the IANA database" in viewer_client.post(URL, {"time_zone": "Mars/X"}).content.decode()
    assert _zone_of(viewer) == "Asia/Tokyo"


def test_the_browsers_proposal_never_replaces_a_choice(console, viewer, viewer_client):
    response = viewer_client.post(URL, {"time_zone": "America/New_York", "source": "browser"})
    assert response.status_code == 204 and _zone_of(viewer) == "America/New_York"
    viewer_client.post(URL, {"time_zone": "Asia/Tokyo"})
    response = viewer_client.post(URL, {"time_zone": "Europe/London", "source": "browser"})
    assert response.status_code == 204 and _zone_of(viewer) == "Asia/Tokyo"


def test_setting_the_zone_needs_login_permission_post_and_csrf(console, client):
    response = client.post(URL, {"time_zone": "Asia/Tokyo"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    nobody = staff_user(username="nobody", group=None)
    client.force_login(nobody)  # staff, but without view_chat_sessions
    assert client.post(URL, {"time_zone": "Asia/Tokyo"}).status_code == 403
    assert not StaffProfile.objects.filter(user=nobody).exists()
    viewer = staff_user(username="vic", group="Viewer")
    client.force_login(viewer)
    assert client.get(URL).status_code == 405
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(viewer)
    assert strict.post(URL, {"time_zone": "Asia/Tokyo"}).status_code == 403
    assert _zone_of(viewer) == ""
    assert client.post(URL, {"time_zone": "Asia/Tokyo"}).status_code == 302
    # Not audited: choosing one's own zone changes nothing anyone else sees.
    assert not AuditLog.objects.filter(actor_username="vic").exists()


def test_the_admin_uses_the_same_format_in_the_zone(console, client):
    admin_user = User.objects.create_superuser("root", password="pw-root")
    StaffProfile.objects.create(user=admin_user, time_zone="Asia/Tokyo")
    entry = AuditLog.objects.create(actor_username="sam", action="session_close", outcome="ok", session_id="s1")
    AuditLog.objects.filter(pk=entry.pk).update(created_at=datetime(2026, 12, 7, 6, 4, 5, tzinfo=dt_timezone.utc))
    client.force_login(admin_user)
    body = client.get("/admin/sessions_app/auditlog/").content.decode()
    assert "2026-12-07 15:04:05 JST" in body
    body = client.get(f"/admin/sessions_app/auditlog/{entry.pk}/change/").content.decode()
    assert "2026-12-07 15:04:05 JST" in body
    meta = make_session(started_at=at("2026-11-20"), turns=1)
    services.session_close(session_id=meta.session_id)
    body = client.get(f"/admin/chat-sessions/{meta.session_id}/").content.decode()
    assert "2026-11-20 17:00:00 JST" in body
