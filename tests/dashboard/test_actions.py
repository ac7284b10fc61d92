"""Supervisor actions: close, regenerate summary, exports, privacy delete — each audited."""

from __future__ import annotations

import csv
import io
import json
import re

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


CONFIRMED = {"confirm": "close"}  # what the close confirmation (dialog, or confirm page) posts


def test_close_closes_and_audits(console, supervisor_client):
    meta = make_session(turns=2, customer_id="cust-c")
    response = supervisor_client.post(reverse("dashboard:session_close", args=[meta.session_id]), CONFIRMED, follow=True)
    assert "Session closed." in response.content.decode()
    assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "closed"
    row = AuditLog.objects.get(action="session_close")
    assert (row.actor_username, row.session_id, row.customer_id, row.outcome) == ("sam", meta.session_id, "cust-c", "ok")
    assert row.detail == {"changed": True}


def test_close_of_missing_session_is_404_and_audited_as_error(console, supervisor_client):
    response = supervisor_client.post(reverse("dashboard:session_close", args=["nope"]), CONFIRMED)
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
    supervisor_client.post(reverse("dashboard:session_close", args=[meta.session_id]), CONFIRMED)
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


# --- the close confirmation, regenerate when fresh, the page after an action -----------------------

CLOSE_CONSEQUENCES = ("Closing ends the conversation: the bot&#x27;s next append gets 409 session_closed, "
                      "heartbeats are refused, and a summary is requested.")


def _dialog(body: str) -> str:
    return re.search(r'<dialog id="close-confirm"[^>]*>.*?</dialog>', body, re.S).group(0)


def test_close_asks_for_confirmation_and_says_what_follows(console, supervisor_client):
    meta = make_session(turns=2)
    url = reverse("dashboard:session_detail", args=[meta.session_id])
    body = supervisor_client.get(url).content.decode()
    # The button opens the dialog (timeline.js); without JavaScript its link is the confirm page.
    assert f'<a class="button" href="{url}?confirm=close#close-confirm" id="close-button" data-opens-dialog="close-confirm"' in body
    dialog = _dialog(body)
    assert " open" not in dialog.split(">", 1)[0] and CLOSE_CONSEQUENCES in dialog
    assert '<input type="hidden" name="confirm" value="close">' in dialog
    assert 'formmethod="dialog"' in dialog  # Cancel closes the dialog, posts nothing
    confirm_page = supervisor_client.get(url, {"confirm": "close"}).content.decode()
    assert _dialog(confirm_page).startswith('<dialog id="close-confirm" class="confirm-dialog" aria-labelledby="close-confirm-title" aria-describedby="close-consequences" open>')
    assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "active"  # asking closes nothing


@pytest.mark.parametrize("data", [{}, {"confirm": ""}, {"confirm": "yes"}])
def test_close_without_the_confirmation_closes_nothing_and_shows_the_confirmation(console, supervisor_client, data):
    meta = make_session(turns=2)
    response = supervisor_client.post(reverse("dashboard:session_close", args=[meta.session_id]), data)
    assert response.status_code == 400
    body = response.content.decode()
    dialog = _dialog(body)
    assert " open>" in dialog.split("\n", 1)[0] and CLOSE_CONSEQUENCES in dialog
    assert "The session was not closed: confirm below that it should be." in dialog
    assert 'id="timeline"' in body and "status-active" in body  # the whole page, not an error page
    assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "active"
    assert AuditLog.objects.filter(action="session_close").count() == 0
    # Links on this page (answered at …/close/) still lead to the session's page, not to …/close/.
    assert f'data-page-url="{reverse("dashboard:session_detail", args=[meta.session_id])}"' in body


def test_after_a_summary_and_a_close_the_page_shows_the_new_state_at_once(through_dax, supervisor_client, settings):
    """What staff just did shows on the next load, even while DAX's item cache still holds an
    older META (a writer that bypassed DAX: DAX keeps its copy until its TTL)."""
    from sessions_app import dynamo
    from sessions_app.selectors.sessions import session_get
    from sessions_app.services.summaries import summary_write

    meta = make_session(turns=12)
    url = reverse("dashboard:session_detail", args=[meta.session_id])
    assert 'data-summary-state="none"' in supervisor_client.get(url).content.decode()
    assert int(session_get(session_id=meta.session_id).summary_through or 0) == 0  # DAX holds META now
    settings.DAX_WRITE_THROUGH = False
    dynamo.reset_connections()
    summary_write(session_id=meta.session_id, through_seq=12, text="Asked about volume 12.", generator="test",
                  expires_at=meta.expires_at)
    assert int(session_get(session_id=meta.session_id).summary_through or 0) == 0  # DAX: still the old META
    body = supervisor_client.get(url).content.decode()
    assert 'data-summary-state="fresh"' in body and "covers turns 1–12 of 12" in body
    assert "Asked about volume 12." in body
    response = supervisor_client.post(reverse("dashboard:session_close", args=[meta.session_id]), CONFIRMED)
    assert response.status_code == 302
    assert session_get(session_id=meta.session_id).status == "active"  # DAX: still the old META
    body = supervisor_client.get(response["Location"]).content.decode()
    assert "Session closed." in body and "status-closed" in body and "status-active" not in body
    assert "Close session" not in body and "The session is closed." in body  # the hand-off panel agrees


def test_regenerate_on_a_fresh_summary_says_there_is_nothing_to_regenerate(console, supervisor_client):
    from sessions_app.services.summaries import summary_write

    meta = make_session(turns=4)
    summary_write(session_id=meta.session_id, through_seq=4, text="All four turns.", generator="test",
                  expires_at=meta.expires_at)
    url = reverse("dashboard:session_summarize", args=[meta.session_id])
    panel = supervisor_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "The summary already covers turns 1–4; nothing to regenerate." in panel
    assert 'data-summary-state="fresh"' in panel and 'hx-trigger="every 2s"' not in panel
    fresh = SessionMeta.get(meta.pk, meta.sk, consistent_read=True)
    assert fresh.summary_task_id is None and fresh.summary_state != "pending"  # nothing was queued
    row = AuditLog.objects.get(action="summary_request")
    assert row.outcome == "up_to_date" and row.detail == {"through_seq": 4, "turn_count": 4}
    # Without htmx: the same words on the page it returns to.
    page = supervisor_client.post(url, follow=True).content.decode()
    assert "The summary already covers turns 1–4; nothing to regenerate." in page
    # One more turn: there is something to regenerate again.
    services.turn_write(session_id=meta.session_id, role="user", text="and one more", client_msg_id="m-5")
    panel = supervisor_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "nothing to regenerate" not in panel
    assert AuditLog.objects.filter(action="summary_request").exclude(outcome="up_to_date").count() == 1


def test_regenerate_without_turns_says_there_is_nothing_to_summarise(console, supervisor_client):
    meta = make_session()
    panel = supervisor_client.post(reverse("dashboard:session_summarize", args=[meta.session_id]),
                                   HTTP_HX_REQUEST="true").content.decode()
    assert "There are no turns to summarise yet." in panel
    assert AuditLog.objects.get(action="summary_request").outcome == "up_to_date"


def test_a_wrong_delete_confirmation_redisplays_the_form_with_the_error(console, supervisor_client):
    meta = make_session(turns=2)
    response = supervisor_client.post(reverse("dashboard:session_delete", args=[meta.session_id]), {"confirm": "wrong"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Privacy delete: dry run" in body and "Turn: 2" in body  # the dry run again
    form = re.search(r'<form method="post" class="danger-zone" id="delete-confirm-form">.*?</form>', body, re.S).group(0)
    assert 'value="wrong"' in form and 'aria-invalid="true"' in form
    error = re.search(r'<p class="error" id="confirm-error" role="alert">([^<]+)</p>', form).group(1)
    assert "session id" in error
    # Nothing typed: the same page, the same kind of answer.
    empty = supervisor_client.post(reverse("dashboard:session_delete", args=[meta.session_id]), {"confirm": ""})
    assert empty.status_code == 400 and 'id="confirm-error"' in empty.content.decode()
    assert len(list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True))) == 5
    # The right one, from that page, deletes.
    done = supervisor_client.post(reverse("dashboard:session_delete", args=[meta.session_id]), {"confirm": meta.session_id})
    assert done.status_code == 200 and 'data-complete="yes"' in done.content.decode()


def test_a_wrong_customer_delete_confirmation_redisplays_the_form_with_the_error(console, supervisor_client):
    mine, _ = _customer_with_traces("cust-dsr2")
    response = supervisor_client.post(reverse("dashboard:customer_delete", args=["cust-dsr2"]), {"confirm": "cust-dsr"})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Privacy delete of a customer: dry run" in body and "Sessions (2)" in body
    assert re.search(r'<p class="error" id="confirm-error" role="alert">[^<]*customer id[^<]*</p>', body)
    assert 'value="cust-dsr"' in body
    assert all(len(list(ChatItem.query(keys.session_pk(m.session_id)))) > 0 for m in mine)
