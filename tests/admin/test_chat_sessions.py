"""The Django admin: read-only audit log and the Chat sessions section (same selectors/services)."""

from __future__ import annotations

from django.urls import reverse

from datetime import timedelta

from sessions_app import keys
from sessions_app.clock import utcnow
from sessions_app.models import AuditLog, ChatItem, SessionMeta
from sessions_app.realtime import rate_limit_hit
from tests.builders import make_session
from tests.fixtures.staff import staff_user
from tests.selectors.test_export import HOSTILE, csv_rows_defused, hostile_session


def test_admin_index_links_chat_sessions_and_audit_log(console, supervisor_client):
    body = supervisor_client.get(reverse("admin:index")).content.decode()
    assert 'id="chat-sessions-module"' in body and reverse("admin:chat_sessions") in body
    assert "Audit logs" in body


def test_admin_chat_sessions_requires_staff_login_and_permission(console, client):
    assert client.get(reverse("admin:chat_sessions"))["Location"].startswith("/admin/login/")
    client.force_login(staff_user(username="nobody", group=None))
    assert client.get(reverse("admin:chat_sessions")).status_code == 403


def test_admin_search_by_customer_and_by_session(console, viewer_client):
    meta = make_session(customer_id="cust-adm", turns=2)
    listing = viewer_client.get(reverse("admin:chat_sessions"), {"q": "cust-adm"}).content.decode()
    assert meta.session_id in listing and "admin/base" not in listing  # rendered, not the raw template name
    response = viewer_client.get(reverse("admin:chat_sessions"), {"q": meta.session_id})
    assert response["Location"] == reverse("admin:chat_session_detail", args=[meta.session_id])
    detail = viewer_client.get(response["Location"]).content.decode()
    assert "turn 2 text" in detail and "Close session" not in detail


def test_admin_escapes_chat_text(console, viewer_client):
    from sessions_app import services

    meta = make_session()
    services.turn_write(session_id=meta.session_id, role="user", text="<script>alert(1)</script>", client_msg_id="x")
    body = viewer_client.get(reverse("admin:chat_session_detail", args=[meta.session_id])).content.decode()
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_admin_actions_are_supervisor_only_and_audited(console, viewer_client):
    meta = make_session(turns=1)
    url = reverse("admin:chat_session_action", args=[meta.session_id])
    assert viewer_client.post(url, {"action": "close"}).status_code == 403
    assert AuditLog.objects.get().outcome == "denied"


def test_admin_close_export_and_delete(console, supervisor_client):
    meta = make_session(turns=2, customer_id="cust-z")
    url = reverse("admin:chat_session_action", args=[meta.session_id])
    supervisor_client.post(url, {"action": "close"})
    assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "closed"
    export = supervisor_client.post(url, {"action": "export_csv"})
    assert b"turn 2 text" in b"".join(export.streaming_content)
    # The same streamed response as the console's: named, typed, never cached.
    assert export["Content-Disposition"] == f'attachment; filename="session-{meta.session_id}.csv"'
    assert export["Content-Type"] == "text/csv; charset=utf-8" and "no-store" in export["Cache-Control"].split(", ")
    plan = supervisor_client.post(url, {"action": "delete_plan"}).content.decode()
    assert "5 DynamoDB items" in plan
    receipt = supervisor_client.post(url, {"action": "delete", "confirm": meta.session_id}).content.decode()
    assert 'data-complete="yes"' in receipt
    assert list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True)) == []
    assert list(AuditLog.objects.order_by("created_at", "id").values_list("action", "outcome")) == [
        ("session_close", "ok"), ("export_csv", "streamed"), ("privacy_delete", "ok")]


def test_audit_log_admin_is_read_only(console, supervisor_client, supervisor):
    row = AuditLog.objects.create(actor=supervisor, actor_username="sam", action="session_close", outcome="ok")
    assert supervisor_client.get(reverse("admin:sessions_app_auditlog_changelist")).status_code == 200
    assert supervisor_client.get(reverse("admin:sessions_app_auditlog_add")).status_code == 403
    change = supervisor_client.get(reverse("admin:sessions_app_auditlog_change", args=[row.pk]))
    assert change.status_code == 200 and 'name="_save"' not in change.content.decode()
    assert supervisor_client.post(reverse("admin:sessions_app_auditlog_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    assert AuditLog.objects.filter(pk=row.pk).exists()


def test_admin_shows_the_summary_state_the_console_shows(console, viewer_client, settings):
    meta = make_session(customer_id="cust-sum", turns=2)
    SessionMeta.get(meta.pk, meta.sk).update(actions=[
        SessionMeta.summary_state.set("pending"),
        SessionMeta.summary_requested_at.set(utcnow() - timedelta(minutes=settings.SUMMARY_PENDING_MINUTES + 1)),
    ])
    detail = viewer_client.get(reverse("admin:chat_session_detail", args=[meta.session_id])).content.decode()
    assert "<th>Summary</th><td>stale" in detail
    listing = viewer_client.get(reverse("admin:chat_sessions"), {"q": "cust-sum"}).content.decode()
    assert "<td>stale</td>" in listing and "<td>pending</td>" not in listing


def test_admin_customer_delete_through_the_same_service(console, supervisor_client, redis_client):
    mine = [make_session(customer_id="cust-adm", turns=2), make_session(customer_id="cust-adm", turns=1)]
    other = make_session(customer_id="cust-keep", turns=1)
    rate_limit_hit(customer_id="cust-adm")
    listing = supervisor_client.get(reverse("admin:chat_sessions"), {"q": "cust-adm"}).content.decode()
    url = reverse("admin:chat_customer_delete", args=["cust-adm"])
    assert url in listing
    plan = supervisor_client.get(url).content.decode()
    assert "2 sessions" in plan and "8 DynamoDB items" in plan and "1 Redis keys" in plan
    assert AuditLog.objects.count() == 0
    refused = supervisor_client.post(url, {"confirm": "wrong"}, follow=True).content.decode()
    assert "Type the customer id to confirm the delete" in refused  # the admin capitalises its messages
    receipt = supervisor_client.post(url, {"confirm": "cust-adm"}).content.decode()
    assert 'data-complete="yes"' in receipt and "(2 sessions)" in receipt
    assert all(list(ChatItem.query(keys.session_pk(m.session_id), consistent_read=True)) == [] for m in mine)
    assert len(list(ChatItem.query(keys.session_pk(other.session_id)))) == 3
    assert not redis_client.exists("rate:cust-adm")
    assert list(AuditLog.objects.order_by("created_at", "id").values_list("action", "outcome", "customer_id")) == [
        ("privacy_delete_customer", "error", "cust-adm"), ("privacy_delete_customer", "ok", "cust-adm")]


def test_admin_customer_delete_is_supervisor_only_and_the_refusal_is_audited(console, viewer_client):
    meta = make_session(customer_id="cust-adm", turns=1)
    url = reverse("admin:chat_customer_delete", args=["cust-adm"])
    assert url not in viewer_client.get(reverse("admin:chat_sessions"), {"q": "cust-adm"}).content.decode()
    assert viewer_client.get(url).status_code == 403
    assert viewer_client.post(url, {"confirm": "cust-adm"}).status_code == 403
    assert list(AuditLog.objects.values_list("action", "outcome", "customer_id")) == [
        ("admin_customer_delete", "denied", "cust-adm")] * 2
    assert len(list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True))) == 3


def test_admin_shows_control_and_bidi_characters_as_markers(console, viewer_client):
    from datetime import datetime, timezone

    from sessions_app import services
    from sessions_app.models import Summary

    meta = make_session(customer_id="cust-bidi")
    spoof = "<i>paid</i>\u202e devorppa dnufeR\u202c\x00\u2067x\u2069"
    services.turn_write(session_id=meta.session_id, role="user", text=spoof, client_msg_id="x")
    Summary(meta.pk, keys.summary_sk(1), through_seq=1, text="sum " + spoof, generator="extractive",
            created_at=datetime.now(timezone.utc)).save()
    SessionMeta.get(meta.pk, meta.sk).update(actions=[SessionMeta.summary_through.set(1)])
    body = viewer_client.get(reverse("admin:chat_session_detail", args=[meta.session_id])).content.decode()
    for char in ["\u202e", "\u202c", "\x00", "\u2067", "\u2069"]:
        assert char not in body, repr(char)
    assert body.count('<span class="ctl" title="U+202E RIGHT-TO-LEFT OVERRIDE">U+202E</span>') == 2
    assert "&lt;i&gt;paid&lt;/i&gt;" in body and "<i>paid</i>" not in body
    # The admin pages load the stylesheet that makes the markers stand out.
    assert "dashboard/controls.css" in body


def test_admin_csv_export_defuses_every_text_cell(console, supervisor_client):
    meta = hostile_session()
    export = supervisor_client.post(reverse("admin:chat_session_action", args=[meta.session_id]), {"action": "export_csv"})
    assert export.status_code == 200 and export["Content-Type"] == "text/csv; charset=utf-8"
    assert len(csv_rows_defused(b"".join(export.streaming_content), session_id=meta.session_id)) == len(HOSTILE)
