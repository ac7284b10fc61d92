"""Supervisor actions: close, regenerate summary, exports, privacy delete — each audited."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.urls import reverse

from sessions_app import keys, services
from sessions_app.models import AuditLog, ChatItem, SessionMeta
from sessions_app.realtime import (
    connection_put,
    context_cache_get,
    presence_get,
    presence_heartbeat,
    rate_limit_hit,
    realtime_keys_for_session,
    summary_lock_acquire,
)
from sessions_app.selectors import context_load
from tests.builders import at, make_session
from tests.selectors.test_export import HOSTILE, csv_rows_defused, hostile_session

XSS = '<img src=x onerror="alert(1)">'


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def test_close_closes_and_audits(console, supervisor_client):
    meta = make_session(turns=2, customer_id="cust-c")
    response = supervisor_client.post(reverse("dashboard:session_close", args=[meta.session_id]), follow=True)
    assert "Session closed." in response.content.decode()
    assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "closed"
    row = AuditLog.objects.get(action="session_close")
    assert (row.actor_username, row.session_id, row.customer_id, row.outcome) == ("sam", meta.session_id, "cust-c", "ok")
    assert row.detail == {"changed": True}


def test_close_of_missing_session_is_404_and_audited_as_error(console, supervisor_client):
    response = supervisor_client.post(reverse("dashboard:session_close", args=["nope"]))
    assert response.status_code == 404
    assert AuditLog.objects.get(action="session_close").outcome == "error"


def test_regenerate_summary_marks_pending_and_audits_the_task(console, supervisor_client):
    meta = make_session(turns=4)
    response = supervisor_client.post(reverse("dashboard:session_summarize", args=[meta.session_id]),
                                      HTTP_HX_REQUEST="true")
    body = response.content.decode()
    row = AuditLog.objects.get(action="summary_request")
    assert row.session_id == meta.session_id
    if row.outcome == "ok":  # a broker is reachable in this test run
        assert 'data-summary-state="pending"' in body and 'hx-trigger="every 2s"' in body
        assert row.detail["task_id"] in body
    else:
        assert row.outcome == "not_queued"


def test_session_export_json_contains_every_turn_escaped_nowhere(console, supervisor_client):
    meta = make_session(turns=3, customer_id="cust-e")
    services.turn_write(session_id=meta.session_id, role="user", text=XSS + " 日本語", client_msg_id="x")
    response = supervisor_client.post(reverse("dashboard:session_export", args=[meta.session_id]), {"format": "json"})
    assert response["Content-Disposition"] == f'attachment; filename="session-{meta.session_id}.json"'
    assert response["Content-Type"] == "application/json; charset=utf-8" and response["Cache-Control"] == "no-store"
    data = json.loads(_body(response))
    (exported,) = data["sessions"]
    assert exported["session"]["customer_id"] == "cust-e"
    assert [t["seq"] for t in exported["turns"]] == [1, 2, 3, 4]
    assert exported["turns"][-1]["text"] == XSS + " 日本語"  # data, not HTML: exported verbatim
    row = AuditLog.objects.get(action="export_json")
    assert (row.session_id, row.customer_id, row.outcome, row.detail["scope"]) == (meta.session_id, "cust-e", "streamed", "session")


def test_customer_export_csv_has_one_row_per_turn_and_defuses_formulas(console, supervisor_client):
    a = make_session(customer_id="cust-f", turns=2, started_at=at("2026-11-20"))
    b = make_session(customer_id="cust-f", turns=1, started_at=at("2026-11-21"))
    make_session(customer_id="cust-g", turns=5)
    services.turn_write(session_id=b.session_id, role="user", text="=HYPERLINK(\"http://evil\")", client_msg_id="f")
    response = supervisor_client.post(reverse("dashboard:customer_export", args=["cust-f"]), {"format": "csv"})
    rows = list(csv.DictReader(io.StringIO(_body(response).decode("utf-8-sig"))))
    assert [(r["session_id"], r["seq"]) for r in rows] == [(b.session_id, "1"), (b.session_id, "2"), (a.session_id, "1"), (a.session_id, "2")]
    assert rows[1]["text"] == "'=HYPERLINK(\"http://evil\")"
    assert AuditLog.objects.get(action="export_csv").customer_id == "cust-f"


def test_filter_export_uses_the_list_filters(console, supervisor_client):
    keep = make_session(channel="line", started_at=at("2026-11-20"), turns=1)
    make_session(channel="web", started_at=at("2026-11-20", 1), turns=1)
    url = reverse("dashboard:filter_export") + "?day_from=2026-11-20&day_to=2026-11-20&channel=line"
    data = json.loads(_body(supervisor_client.post(url, {"format": "json"})))
    assert [s["session"]["session_id"] for s in data["sessions"]] == [keep.session_id]
    assert AuditLog.objects.get(action="export_json").detail["filters"]["channel"] == "line"


def test_delete_dry_run_counts_items_and_redis_keys_without_deleting(console, supervisor_client):
    meta = make_session(turns=3)
    presence_heartbeat(session_id=meta.session_id, connection_id="conn-1")
    connection_put(connection_id="conn-1", session_id=meta.session_id)
    body = supervisor_client.get(reverse("dashboard:session_delete", args=[meta.session_id])).content.decode()
    assert "SessionMeta: 1" in body and "Turn: 3" in body and "ClientMessageMarker: 3" in body
    for key in (f"presence:session:{meta.session_id}", f"conn:session:{meta.session_id}", "conn:id:conn-1"):
        assert f"<code>{key}</code>" in body
    assert len(list(ChatItem.query(keys.session_pk(meta.session_id)))) == 7
    assert AuditLog.objects.filter(action="privacy_delete").count() == 0


def test_delete_with_wrong_confirmation_deletes_nothing(console, supervisor_client):
    meta = make_session(turns=1)
    response = supervisor_client.post(reverse("dashboard:session_delete", args=[meta.session_id]), {"confirm": "wrong"})
    assert response.status_code == 400
    assert len(list(ChatItem.query(keys.session_pk(meta.session_id)))) == 3
    assert AuditLog.objects.get(action="privacy_delete").outcome == "error"


def test_delete_removes_items_and_redis_keys_and_issues_a_receipt(console, supervisor_client):
    meta = make_session(turns=3, customer_id="cust-d")
    other = make_session(turns=1, customer_id="cust-d")
    presence_heartbeat(session_id=meta.session_id, connection_id="conn-1")
    connection_put(connection_id="conn-1", session_id=meta.session_id)
    assert realtime_keys_for_session(session_id=meta.session_id)
    response = supervisor_client.post(reverse("dashboard:session_delete", args=[meta.session_id]), {"confirm": meta.session_id})
    body = response.content.decode()
    assert response.status_code == 200 and 'data-complete="yes"' in body
    assert "<b>empty</b>" in body and "300 seconds" in body
    assert list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True)) == []
    assert realtime_keys_for_session(session_id=meta.session_id) == []
    assert len(list(ChatItem.query(keys.session_pk(other.session_id)))) == 3  # the other session is untouched
    row = AuditLog.objects.get(action="privacy_delete")
    receipt = row.detail["receipt"]
    assert (row.outcome, row.customer_id) == ("ok", "cust-d")
    assert receipt["verified_empty"] and receipt["items_deleted"] == {"SessionMeta": 1, "Turn": 3, "ClientMessageMarker": 3}
    assert receipt["redis_keys_deleted"] >= 3 and receipt["dax_ttl_seconds"] == 300
    # The deleted session is gone from the console too.
    assert supervisor_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).status_code == 404


def test_close_drops_the_cached_context_and_presence(console, supervisor_client):
    meta = make_session(turns=2)
    context_load(session_id=meta.session_id)  # the bot's context, cached with META "active"
    presence_heartbeat(session_id=meta.session_id, connection_id="conn-1")
    assert context_cache_get(session_id=meta.session_id, variant="t20").payload is not None
    supervisor_client.post(reverse("dashboard:session_close", args=[meta.session_id]))
    assert context_cache_get(session_id=meta.session_id, variant="t20").payload is None
    assert presence_get(session_id=meta.session_id).state == "offline"
    assert json.loads(context_load(session_id=meta.session_id).payload)["session"]["status"] == "closed"


# --- everything of one customer -------------------------------------------------------------------

def _customer_with_traces(customer_id: str):
    """Two sessions of the customer (one with a summary lock held), presence, a connection and a
    rate window; and another customer's session, which must survive."""
    mine = [make_session(customer_id=customer_id, turns=2, started_at=at("2026-11-20")),
            make_session(customer_id=customer_id, turns=1)]
    presence_heartbeat(session_id=mine[1].session_id, connection_id="conn-9")
    connection_put(connection_id="conn-9", session_id=mine[1].session_id)
    summary_lock_acquire(session_id=mine[0].session_id, token="task-1", ttl_seconds=60)
    rate_limit_hit(customer_id=customer_id)
    other = make_session(customer_id="cust-other", turns=1)
    rate_limit_hit(customer_id="cust-other")
    return mine, other


def test_customer_delete_dry_run_counts_everything_and_deletes_nothing(console, supervisor_client):
    mine, _ = _customer_with_traces("cust-dsr")
    body = supervisor_client.get(reverse("dashboard:customer_delete", args=["cust-dsr"])).content.decode()
    assert "Sessions (2)" in body and all(m.session_id in body for m in mine)
    assert "DynamoDB items (8)" in body and "SessionMeta: 2" in body and "Turn: 3" in body and "ClientMessageMarker: 3" in body
    for key in ("rate:cust-dsr", f"lock:summary:{mine[0].session_id}", f"presence:session:{mine[1].session_id}",
                f"conn:session:{mine[1].session_id}", "conn:id:conn-9"):
        assert f"<code>{key}</code>" in body
    assert "Redis keys (5)" in body and "rate:cust-other" not in body
    assert all(len(list(ChatItem.query(keys.session_pk(m.session_id)))) > 0 for m in mine)
    assert AuditLog.objects.count() == 0


def test_customer_delete_removes_every_session_and_key_and_issues_a_receipt(console, supervisor_client, redis_client):
    mine, other = _customer_with_traces("cust-dsr")
    url = reverse("dashboard:customer_delete", args=["cust-dsr"])
    response = supervisor_client.post(url, {"confirm": "cust-dsr"})
    body = response.content.decode()
    assert response.status_code == 200 and 'data-complete="yes"' in body and "<b>empty</b>" in body
    assert "2 sessions" in body and "300 seconds" in body
    for meta in mine:
        assert list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True)) == []
        assert realtime_keys_for_session(session_id=meta.session_id) == []
    assert not redis_client.exists("rate:cust-dsr") and redis_client.exists("rate:cust-other")
    assert len(list(ChatItem.query(keys.session_pk(other.session_id)))) == 3
    row = AuditLog.objects.get(action="privacy_delete_customer")
    receipt = row.detail["receipt"]
    assert (row.actor_username, row.customer_id, row.outcome) == ("sam", "cust-dsr", "ok")
    assert sorted(receipt["session_ids"]) == sorted(m.session_id for m in mine) and receipt["remaining_session_ids"] == []
    assert receipt["items_deleted"] == {"SessionMeta": 2, "Turn": 3, "ClientMessageMarker": 3}
    # The 5 keys of the dry run, plus the session's entry in the shared presence:online set.
    assert receipt["verified_empty"] and receipt["complete"] and receipt["redis_keys_deleted"] == 6
    assert receipt["dax_ttl_seconds"] == 300 and receipt["dax_clear_by"] > receipt["completed_at"]
    # Nothing of the customer is left to list.
    listing = supervisor_client.get(reverse("dashboard:customer_detail", args=["cust-dsr"])).content.decode()
    assert "No sessions on this page." in listing


def test_customer_delete_with_the_wrong_confirmation_deletes_nothing_and_is_audited(console, supervisor_client):
    mine, _ = _customer_with_traces("cust-dsr")
    response = supervisor_client.post(reverse("dashboard:customer_delete", args=["cust-dsr"]),
                                      {"confirm": mine[0].session_id})
    assert response.status_code == 400 and "type the customer id to confirm" in response.content.decode()
    assert all(len(list(ChatItem.query(keys.session_pk(m.session_id)))) > 0 for m in mine)
    row = AuditLog.objects.get(action="privacy_delete_customer")
    assert row.outcome == "error" and row.detail["error"].startswith("invalid_input")


@pytest.mark.parametrize("entry", ["session", "customer", "filter"])
def test_every_console_csv_export_defuses_every_text_cell(console, supervisor_client, entry):
    meta = hostile_session(customer_id="cust-h", started_at=at("2026-11-20"))
    url = {
        "session": reverse("dashboard:session_export", args=[meta.session_id]),
        "customer": reverse("dashboard:customer_export", args=["cust-h"]),
        "filter": reverse("dashboard:filter_export") + "?day_from=2026-11-20&day_to=2026-11-20",
    }[entry]
    response = supervisor_client.post(url, {"format": "csv"})
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert len(csv_rows_defused(_body(response), session_id=meta.session_id)) == len(HOSTILE)
    assert AuditLog.objects.get(action="export_csv").detail["scope"] == entry
