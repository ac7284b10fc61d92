"""Login throttling (django-axes, database handler) through the real login views: the console's
/accounts/login/ and the admin's /admin/login/. Failures count per user and per client address;
at LOGIN_FAILURE_LIMIT the user or address is locked for LOGIN_COOLOFF_MINUTES, even with the right
password, and the lockout leaves one audit row."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.test import Client
from django.utils import timezone

from sessions_app.models import AuditLog
from tests.fixtures.staff import staff_user

LOGIN_PAGES = ["/accounts/login/", "/admin/login/"]


def _login(page: str, username: str, password: str, *, ip: str, client: Client | None = None, **meta):
    client = client or Client()
    response = client.post(page, {"username": username, "password": password, "next": "/"}, REMOTE_ADDR=ip, **meta)
    return response, "_auth_user_id" in client.session


@pytest.fixture
def sam(db):
    return staff_user(username="sam", group="Supervisor")  # password "pw-sam"


def test_the_limits_come_from_the_login_settings(settings):
    assert settings.AXES_FAILURE_LIMIT == settings.LOGIN_FAILURE_LIMIT == 5
    assert settings.AXES_COOLOFF_TIME == timedelta(minutes=settings.LOGIN_COOLOFF_MINUTES) == timedelta(minutes=15)
    assert settings.AXES_HANDLER.endswith("AuditedDatabaseHandler")  # a database handler: no cache needed


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_forty_wrong_passwords_then_the_right_one_is_refused(sam, settings, page):
    limit = settings.LOGIN_FAILURE_LIMIT
    client = Client()
    statuses = [_login(page, "sam", f"wrong-{n}", ip="198.51.100.7", client=client)[0].status_code for n in range(40)]
    # The form answers until the limit; the failure that reaches it, and every later one, is 429.
    assert statuses == [200] * (limit - 1) + [429] * (40 - limit + 1)
    response, logged_in = _login(page, "sam", "pw-sam", ip="198.51.100.7", client=client)
    assert response.status_code == 429 and not logged_in
    assert "Too many failed log-ins" in response.content.decode()
    assert f"{settings.LOGIN_COOLOFF_MINUTES} minutes" in response.content.decode()
    # One audit row for the lockout, not one per refused attempt.
    row = AuditLog.objects.get()
    assert (row.action, row.outcome, row.actor) == ("login_locked_out", "locked", None)
    assert row.detail == {"username": "sam", "ip_address": "198.51.100.7", "path": page,
                          "failure_limit": limit, "cooloff_minutes": settings.LOGIN_COOLOFF_MINUTES}


@pytest.mark.parametrize("page", LOGIN_PAGES)
def test_the_right_password_still_works_below_the_limit(sam, settings, page):
    for n in range(settings.LOGIN_FAILURE_LIMIT - 1):
        assert _login(page, "sam", "nope", ip="198.51.100.7")[0].status_code == 200
    response, logged_in = _login(page, "sam", "pw-sam", ip="198.51.100.7")
    assert response.status_code == 302 and logged_in
    assert not AuditLog.objects.exists()


def test_a_user_is_locked_whatever_address_the_guesses_come_from(sam, settings):
    vera = staff_user(username="vera", group="Viewer")
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        _login("/accounts/login/", "sam", "nope", ip=f"203.0.113.{n + 1}")
    for ip in ("192.0.2.200", "192.0.2.201"):
        response, logged_in = _login("/accounts/login/", "sam", "pw-sam", ip=ip)
        assert response.status_code == 429 and not logged_in
    # Another user from yet another address is not affected.
    assert _login("/admin/login/", vera.username, "pw-vera", ip="192.0.2.202")[1]


def test_an_address_is_locked_whatever_usernames_it_tries(sam, settings):
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        _login("/admin/login/", f"guess-{n}", "nope", ip="198.51.100.66")
    response, logged_in = _login("/accounts/login/", "sam", "pw-sam", ip="198.51.100.66")
    assert response.status_code == 429 and not logged_in
    assert _login("/accounts/login/", "sam", "pw-sam", ip="198.51.100.67")[1]
    assert AuditLog.objects.get().detail["username"] == f"guess-{settings.LOGIN_FAILURE_LIMIT - 1}"


def test_the_lockout_ends_after_the_cooloff(sam, settings):
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        for _ in range(settings.LOGIN_FAILURE_LIMIT):
            _login("/accounts/login/", "sam", "nope", ip="198.51.100.7")
    cooloff = timedelta(minutes=settings.LOGIN_COOLOFF_MINUTES)
    with time_machine.travel(start + cooloff - timedelta(seconds=30), tick=False):
        # Refused attempts during the lockout do not extend it.
        assert _login("/accounts/login/", "sam", "pw-sam", ip="198.51.100.7")[0].status_code == 429
    with time_machine.travel(start + cooloff + timedelta(seconds=1), tick=False):
        assert _login("/accounts/login/", "sam", "pw-sam", ip="198.51.100.7")[1]


def test_behind_trusted_proxies_the_client_address_is_read_from_x_forwarded_for(sam, settings):
    # Behind one load balancer every request comes from its address; the client's is the last
    # X-Forwarded-For entry (the one the balancer appended). Entries left of it are the client's
    # own invention and must not let it dodge the per-address limit.
    settings.LOGIN_PROXY_COUNT = 1
    for n in range(settings.LOGIN_FAILURE_LIMIT):
        _login("/accounts/login/", f"guess-{n}", "nope", ip="10.0.0.2", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 198.51.100.9")
    locked, _ = _login("/accounts/login/", "sam", "pw-sam", ip="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert locked.status_code == 429
    assert _login("/accounts/login/", "sam", "pw-sam", ip="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.10")[1]
    assert AuditLog.objects.get().detail["ip_address"] == "198.51.100.9"
    # A malformed entry counts against the proxy's own address rather than breaking the login.
    assert _login("/accounts/login/", "sam", "nope", ip="10.0.0.2", HTTP_X_FORWARDED_FOR="not-an-ip")[0].status_code == 200
