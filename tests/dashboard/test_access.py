"""Who gets in: anonymous → login, staff without the permission → 403, Viewer reads, Supervisor acts."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.urls import reverse

from sessions_app.models import AuditLog
from tests.builders import make_session
from tests.fixtures.staff import staff_user

READ_PAGES = ["overview", "session_list", "session_detail", "customer_detail", "session_verify", "session_turns_ok",
              "session_summary_panel"]
ACTIONS = ["session_close", "session_summarize", "session_export", "session_delete_post", "customer_export", "filter_export",
           "customer_delete_get", "customer_delete_post"]


def _url(name: str, meta) -> tuple[str, str, dict]:
    """(method, url, data) for one console endpoint."""
    sid, cid = meta.session_id, meta.customer_id
    return {
        "overview": ("get", reverse("dashboard:overview"), {}),
        "session_list": ("get", reverse("dashboard:session_list"), {}),
        "session_detail": ("get", reverse("dashboard:session_detail", args=[sid]), {}),
        "customer_detail": ("get", reverse("dashboard:customer_detail", args=[cid]), {}),
        "session_verify": ("get", reverse("dashboard:session_verify", args=[sid]), {}),
        "session_turns_ok": ("get", reverse("dashboard:session_summary_panel", args=[sid]), {}),
        "session_summary_panel": ("get", reverse("dashboard:session_summary_panel", args=[sid]), {}),
        "session_close": ("post", reverse("dashboard:session_close", args=[sid]), {}),
        "session_summarize": ("post", reverse("dashboard:session_summarize", args=[sid]), {}),
        "session_export": ("post", reverse("dashboard:session_export", args=[sid]), {"format": "json"}),
        "session_delete_post": ("post", reverse("dashboard:session_delete", args=[sid]), {"confirm": "nope"}),
        "customer_export": ("post", reverse("dashboard:customer_export", args=[cid]), {"format": "csv"}),
        "filter_export": ("post", reverse("dashboard:filter_export"), {"format": "json"}),
        "customer_delete_get": ("get", reverse("dashboard:customer_delete", args=[cid]), {}),
        "customer_delete_post": ("post", reverse("dashboard:customer_delete", args=[cid]), {"confirm": "nope"}),
    }[name]


@pytest.mark.parametrize("name", READ_PAGES + ACTIONS)
def test_anonymous_is_sent_to_login(console, client, name):
    meta = make_session(turns=2)
    method, url, data = _url(name, meta)
    response = getattr(client, method)(url, data)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("name", READ_PAGES + ACTIONS)
def test_staff_without_a_group_gets_403(console, client, name):
    client.force_login(staff_user(username="nobody", group=None))
    meta = make_session(turns=2)
    method, url, data = _url(name, meta)
    assert getattr(client, method)(url, data).status_code == 403


@pytest.mark.parametrize("name", READ_PAGES)
def test_non_staff_user_with_the_permission_gets_403(console, client, name):
    client.force_login(staff_user(username="outsider", group="Supervisor", is_staff=False))
    meta = make_session(turns=2)
    method, url, data = _url(name, meta)
    assert getattr(client, method)(url, data).status_code == 403


@pytest.mark.parametrize("name", READ_PAGES)
def test_viewer_reads_every_page(console, viewer_client, name):
    meta = make_session(turns=2)
    method, url, data = _url(name, meta)
    assert getattr(viewer_client, method)(url, data).status_code == 200


@pytest.mark.parametrize("name", ACTIONS)
def test_viewer_is_refused_every_action_and_the_refusal_is_audited(console, viewer_client, name):
    meta = make_session(turns=2)
    method, url, data = _url(name, meta)
    assert getattr(viewer_client, method)(url, data).status_code == 403
    row = AuditLog.objects.get()
    assert (row.actor_username, row.outcome) == ("vera", "denied")


def test_viewer_sees_no_action_buttons(console, viewer_client):
    meta = make_session(turns=2)
    body = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert "Close session" not in body and "Privacy delete" not in body and "Export JSON" not in body
    assert "Verify against DynamoDB" in body


def test_supervisor_sees_action_buttons(console, supervisor_client):
    meta = make_session(turns=2)
    body = supervisor_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert "Close session" in body and "Privacy delete" in body and "Export JSON" in body


def test_actions_refuse_get(console, supervisor_client):
    meta = make_session(turns=1)
    assert supervisor_client.get(reverse("dashboard:session_close", args=[meta.session_id])).status_code == 405


def test_actions_require_csrf(console, supervisor):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(supervisor)
    meta = make_session(turns=1)
    assert strict.post(reverse("dashboard:session_close", args=[meta.session_id])).status_code == 403
    assert AuditLog.objects.filter(action="session_close").count() == 0


def test_groups_carry_the_documented_permissions(db):
    viewer = set(Group.objects.get(name="Viewer").permissions.values_list("codename", flat=True))
    supervisor = set(Group.objects.get(name="Supervisor").permissions.values_list("codename", flat=True))
    assert viewer == {"view_chat_sessions"}
    assert {"view_chat_sessions", "operate_chat_sessions", "view_auditlog"} <= supervisor
    assert Permission.objects.filter(codename="operate_chat_sessions").exists()


def test_login_page_renders_and_logs_in(db, client):
    staff_user(username="sam", group="Supervisor")
    assert client.get("/accounts/login/").status_code == 200
    response = client.post("/accounts/login/", {"username": "sam", "password": "pw-sam", "next": "/sessions/"})
    assert response.status_code == 302 and response["Location"] == "/sessions/"


def test_unknown_session_is_404(console, viewer_client):
    assert viewer_client.get(reverse("dashboard:session_detail", args=["does-not-exist"])).status_code == 404


def test_only_a_supervisor_is_offered_the_customer_delete(console, client):
    make_session(customer_id="cust-1")
    page = reverse("dashboard:customer_detail", args=["cust-1"])
    delete = reverse("dashboard:customer_delete", args=["cust-1"])
    client.force_login(staff_user(username="v", group="Viewer"))
    assert delete not in client.get(page).content.decode()
    client.force_login(staff_user(username="s", group="Supervisor"))
    assert delete in client.get(page).content.decode()
