"""Unlocking a locked-out login: a Supervisor (or a superuser) deletes the AccessAttempt rows in
the admin's Axes section; `manage.py axes_reset_username NAME` does the same from a shell."""

from __future__ import annotations

from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from tests.fixtures.staff import staff_user


def _lock(username: str, limit: int) -> None:
    for _ in range(limit):
        Client().post("/accounts/login/", {"username": username, "password": "nope"}, REMOTE_ADDR="203.0.113.5")


def _can_log_in(username: str) -> bool:
    client = Client()
    client.post("/accounts/login/", {"username": username, "password": "pw-" + username}, REMOTE_ADDR="192.0.2.50")
    return "_auth_user_id" in client.session


def test_a_supervisor_unlocks_a_user_in_the_admin(db, client, settings):
    staff_user(username="vera", group="Viewer")
    _lock("vera", settings.LOGIN_FAILURE_LIMIT)
    assert not _can_log_in("vera")
    client.force_login(staff_user(username="sam", group="Supervisor"))
    changelist = client.get(reverse("admin:axes_accessattempt_changelist"))
    assert changelist.status_code == 200 and "vera" in changelist.content.decode()
    assert reverse("admin:axes_accessattempt_changelist") in client.get(reverse("admin:index")).content.decode()
    pks = [str(pk) for pk in AccessAttempt.objects.filter(username="vera").values_list("pk", flat=True)]
    response = client.post(reverse("admin:axes_accessattempt_changelist"),
                           {"action": "delete_selected", "_selected_action": pks, "post": "yes"})
    assert response.status_code == 302
    assert not AccessAttempt.objects.filter(username="vera").exists()
    assert _can_log_in("vera")


def test_a_viewer_cannot_see_or_clear_login_attempts(db, client, settings):
    _lock("someone", settings.LOGIN_FAILURE_LIMIT)
    client.force_login(staff_user(username="vera", group="Viewer"))
    assert client.get(reverse("admin:axes_accessattempt_changelist")).status_code == 403
    pk = AccessAttempt.objects.first().pk
    assert client.post(reverse("admin:axes_accessattempt_delete", args=[pk]), {"post": "yes"}).status_code == 403
    assert AccessAttempt.objects.filter(pk=pk).exists()


def test_axes_reset_username_unlocks_from_the_shell(db, settings):
    staff_user(username="vera", group="Viewer")
    _lock("vera", settings.LOGIN_FAILURE_LIMIT)
    assert not _can_log_in("vera")
    call_command("axes_reset_username", "vera")
    assert _can_log_in("vera")
