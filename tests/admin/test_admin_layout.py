"""The admin's sections and breadcrumbs: "Chat sessions" once (the DynamoDB sessions), the project
app's ORM models (API keys, the audit log) under a name of their own, breadcrumbs that lead where
they say; the "Privacy delete…" button and the audit log's wide table styled by admin-chat.css."""

from __future__ import annotations

import re

from django.contrib.staticfiles import finders
from django.urls import reverse

from sessions_app.admin.site import ORM_SECTION_NAME
from sessions_app.models import AuditLog
from tests.builders import make_session

APP_INDEX = "/admin/sessions_app/"


def _body(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _crumbs(body: str) -> str:
    match = re.search(r'<div class="breadcrumbs">(.*?)</div>', body, re.S)
    assert match, "no breadcrumbs"
    return " ".join(match.group(1).split())


def test_each_section_appears_once_with_its_own_name(console, supervisor_client):
    body = _body(supervisor_client.get(reverse("admin:index")))
    captions = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<caption>(.*?)</caption>", body, re.S)]
    assert captions.count("Chat sessions") == 1, captions
    assert captions.count(ORM_SECTION_NAME) == 1, captions
    assert f'<a href="{APP_INDEX}" class="section" title="Models in the {ORM_SECTION_NAME} application">' in body
    assert "API keys" in body and "Audit logs" in body


def test_the_app_index_is_titled_for_its_models(console, supervisor_client):
    body = _body(supervisor_client.get(APP_INDEX))
    assert f"<title>{ORM_SECTION_NAME} administration" in body
    assert "Chat sessions administration" not in body
    assert _crumbs(body) == f'<a href="/admin/">Home</a> &rsaquo; {ORM_SECTION_NAME}'


def test_the_audit_log_breadcrumbs_lead_to_its_section(console, supervisor_client, supervisor):
    row = AuditLog.objects.create(actor=supervisor, actor_username="sam", action="session_close", outcome="ok",
                                  session_id="s-" + "x" * 40, customer_id="cust-" + "y" * 40)
    listing = _body(supervisor_client.get(reverse("admin:sessions_app_auditlog_changelist")))
    assert _crumbs(listing) == (f'<a href="/admin/">Home</a> &rsaquo; <a href="{APP_INDEX}">{ORM_SECTION_NAME}</a> '
                                "&rsaquo; Audit logs")
    # The wide table scrolls sideways (admin-chat.css on the change list).
    assert "/static/dashboard/admin-chat.css" in listing
    change = _body(supervisor_client.get(reverse("admin:sessions_app_auditlog_change", args=[row.pk])))
    crumbs = _crumbs(change)
    assert crumbs.startswith(f'<a href="/admin/">Home</a> &rsaquo; <a href="{APP_INDEX}">{ORM_SECTION_NAME}</a> '
                             f'&rsaquo; <a href="{reverse("admin:sessions_app_auditlog_changelist")}">Audit logs</a>')
    assert "Chat sessions" not in crumbs


def test_the_api_key_breadcrumbs_lead_to_its_section(console, supervisor_client, admin_user, client):
    client.force_login(admin_user)
    body = _body(client.get(reverse("admin:sessions_app_apikey_changelist")))
    assert f'<a href="{APP_INDEX}">{ORM_SECTION_NAME}</a>' in _crumbs(body) and "Chat sessions" not in _crumbs(body)
    add = _body(client.get(reverse("admin:sessions_app_apikey_add")))
    assert f'<a href="{APP_INDEX}">{ORM_SECTION_NAME}</a>' in _crumbs(add)


def test_the_chat_session_breadcrumbs_lead_to_the_chat_sessions_page(console, supervisor_client):
    meta = make_session(turns=1)
    body = _body(supervisor_client.get(reverse("admin:chat_session_detail", args=[meta.session_id])))
    assert f'<a href="{reverse("admin:chat_sessions")}">Chat sessions</a>' in _crumbs(body)


def test_the_privacy_delete_button_has_a_visible_style(console, supervisor_client):
    meta = make_session(turns=1)
    body = _body(supervisor_client.get(reverse("admin:chat_session_detail", args=[meta.session_id])))
    assert 'class="button deletelink">Privacy delete…</button>' in body
    assert "/static/dashboard/admin-chat.css" in body
    css = open(finders.find("dashboard/admin-chat.css"), encoding="utf-8").read()
    rule = re.search(r"\.submit-row button\.deletelink[^{]*\{([^}]*)\}", css)
    assert rule and "background: var(--delete-button-bg)" in rule.group(1)
    assert "color: var(--button-fg)" in rule.group(1)
