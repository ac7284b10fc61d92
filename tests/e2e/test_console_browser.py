"""End-to-end: the console in a real browser (Chromium), each step saving a screenshot."""

from __future__ import annotations

import json

import pytest

from sessions_app import keys, services
from sessions_app.models import ChatItem
from sessions_app.realtime import presence_heartbeat
from tests.builders import at, make_session
from tests.e2e.conftest import PHONE, shot

pytestmark = pytest.mark.e2e


def _demo_session(*, turns: int = 6, **kwargs):
    meta = make_session(**kwargs)
    lines = ["Do you have One Piece volume 108 in stock?", "Yes — Vol. 108 is in stock (paperback, ¥594).",
             "進撃の巨人の34巻は在庫ありますか？", "はい、在庫がございます。カートに追加しました。"]
    for n in range(turns):
        services.turn_write(session_id=meta.session_id, role="user" if n % 2 == 0 else "assistant",
                            text=lines[n % len(lines)], client_msg_id=f"d-{n}",
                            model=None if n % 2 == 0 else "claude-3-haiku", latency_ms=None if n % 2 == 0 else 640.0,
                            tokens_in=None if n % 2 == 0 else 210, tokens_out=None if n % 2 == 0 else 48)
    return meta


def test_login_filter_list_and_open_a_session(make_page, site):
    today = at("2026-11-20").date().isoformat()
    line = _demo_session(customer_id="cust-0007", channel="line", started_at=at("2026-11-20", 1))
    _demo_session(customer_id="cust-0008", channel="web", started_at=at("2026-11-20", 2))
    presence_heartbeat(session_id=line.session_id, connection_id="conn-7f3a")
    page = make_page()
    shot(page, "overview-1280")
    page.click("text=Sessions")
    page.fill("#id_day_from", today)
    page.fill("#id_day_to", today)
    page.select_option("#id_channel", "line")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**channel=line**")
    rows = page.locator("table.sessions tbody tr")
    assert rows.count() == 1 and "cust-0007" in rows.first.inner_text()
    shot(page, "sessions-filtered-1280")
    page.click("a.session-link")
    page.wait_for_selector("#timeline")
    assert page.locator("#presence-panel").inner_text().count("conn-7f3a") >= 1
    # The live server reads without DAX: the panels say so (observed routes, not settings).
    assert "read from <b>DynamoDB</b>" in page.content() and "read from <b>DAX</b>" not in page.content()
    page.click("#verify-button")
    page.wait_for_selector("#verify-report")
    assert "Matches DynamoDB." in page.inner_text("#verify-report")
    shot(page, "session-detail-1280")


def test_load_older_turns_on_a_long_session(make_page, site):
    meta = make_session(turns=130)
    page = make_page()
    page.goto(f"{site}/sessions/{meta.session_id}/")
    assert page.locator("#turn-81").is_visible() and page.locator("#turn-80").count() == 0
    page.click("text=Load older turns")
    page.wait_for_selector("#turn-31")
    page.click("text=Load older turns")
    page.wait_for_selector("#turn-1")
    assert page.locator("li.turn").count() == 130
    assert page.locator("text=Start of the conversation.").is_visible()


def test_regenerate_summary_shows_the_task_state_then_the_summary(make_page, site, worker):
    meta = _demo_session(turns=4)
    page = make_page()
    page.goto(f"{site}/sessions/{meta.session_id}/")
    assert page.get_attribute("[data-summary-state]", "data-summary-state") == "none"
    page.click("text=Regenerate summary")
    page.wait_for_selector("[data-summary-state='pending'], [data-summary-state='fresh']")
    # A real Celery worker (threads of this process) runs the task; the panel polls until the
    # summary it wrote shows up.
    page.wait_for_selector("[data-summary-state='fresh']", timeout=30_000)
    panel = page.inner_text("#summary-panel")
    assert "One Piece" in panel and "turns 1–4 of 4" in panel
    shot(page, "summary-appeared-1280")


def test_export_json_downloads_the_session(make_page, site):
    meta = _demo_session(turns=4)
    page = make_page()
    page.goto(f"{site}/sessions/{meta.session_id}/")
    with page.expect_download() as info:
        page.click("button:has-text('Export JSON')")
    download = info.value
    data = json.loads(open(download.path(), encoding="utf-8").read())
    assert download.suggested_filename == f"session-{meta.session_id}.json"
    assert [t["text"] for t in data["sessions"][0]["turns"]][2] == "進撃の巨人の34巻は在庫ありますか？"


def test_privacy_delete_with_confirmation(make_page, site):
    meta = _demo_session(turns=2)
    page = make_page()
    page.goto(f"{site}/sessions/{meta.session_id}/")
    page.click("text=Privacy delete…")
    page.wait_for_selector("#plan-items")
    assert "Turn: 2" in page.inner_text("#plan-items")
    shot(page, "delete-dry-run-1280")
    page.fill("#id_confirm", meta.session_id)
    page.click("button:has-text('Delete permanently')")
    page.wait_for_selector("#receipt")
    assert page.get_attribute("#receipt", "data-complete") == "yes"
    assert "300 seconds" in page.inner_text("#receipt")
    shot(page, "delete-receipt-1280")
    assert list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True)) == []


def test_xss_payloads_are_inert_at_phone_width(make_page, site):
    meta = make_session(customer_id="cust-xss")
    payloads = ['<script>window.__pwned = 1; alert("x")</script>', '<img src=x onerror="window.__pwned = 2">',
                "ワンピースの最新刊はいつ届きますか？"]
    for n, text in enumerate(payloads):
        services.turn_write(session_id=meta.session_id, role="user", text=text, client_msg_id=f"x-{n}")
    page = make_page(group="Viewer", viewport=PHONE)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{site}/sessions/{meta.session_id}/")
    page.wait_for_selector("#turn-3")
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert page.locator("#turn-1 .turn-text").inner_text() == payloads[0]
    assert page.locator("#turn-2 .turn-text").inner_text() == payloads[1]
    assert page.locator("#turn-3 .turn-text").inner_text() == payloads[2]
    assert page.locator("text=Privacy delete").count() == 0  # a Viewer has no actions
    shot(page, "session-xss-phone")
    page.goto(f"{site}/sessions/")
    shot(page, "sessions-phone")
    page.goto(f"{site}/")
    shot(page, "overview-phone")


def test_privacy_delete_of_a_customer_from_the_customer_page(make_page, site):
    mine = [_demo_session(turns=2, customer_id="cust-dsr"), _demo_session(turns=1, customer_id="cust-dsr")]
    kept = _demo_session(turns=1, customer_id="cust-kept")
    page = make_page()
    page.goto(f"{site}/customers/cust-dsr/")
    page.click("text=Privacy delete of everything of this customer…")
    page.wait_for_selector("#plan-sessions")
    assert page.locator("#plan-sessions li").count() == 2 and "Turn: 3" in page.inner_text("#plan-items")
    shot(page, "customer-delete-dry-run-1280")
    page.fill("#id_confirm", "cust-dsr")
    page.click("button:has-text('Delete permanently')")
    page.wait_for_selector("#receipt")
    assert page.get_attribute("#receipt", "data-complete") == "yes" and "2 sessions" in page.inner_text("#receipt")
    shot(page, "customer-delete-receipt-1280")
    assert all(list(ChatItem.query(keys.session_pk(m.session_id), consistent_read=True)) == [] for m in mine)
    assert len(list(ChatItem.query(keys.session_pk(kept.session_id), consistent_read=True))) == 3
