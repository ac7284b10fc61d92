"""End-to-end in Chromium: a session's per-turn trace and usage aggregates on its page, and the
time zone every time is shown in — proposed from the browser, shown with its abbreviation, and
switchable from the header."""

from __future__ import annotations

import re

import pytest

from sessions_app import services
from sessions_app.models import StaffProfile
from tests.builders import at, make_session
from tests.e2e.conftest import DESKTOP, _user, shot, watch_for_csp_violations

pytestmark = pytest.mark.e2e


def _login(chromium, site, csp_violations, contexts, *, username: str, time_zone: str):
    user = _user(username, "Viewer")
    context = chromium.new_context(viewport=DESKTOP, timezone_id=time_zone)
    contexts.append(context)
    page = context.new_page()
    page.set_default_timeout(15_000)
    watch_for_csp_violations(page, csp_violations)
    page.goto(site + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw-" + username + "-123")
    page.click("button[type=submit]")
    page.wait_for_url(site + "/")
    return user, page


@pytest.fixture
def contexts():
    opened = []
    yield opened
    for context in opened:
        context.close()


def _traced_session():
    meta = make_session(customer_id="cust-0042", started_at=at("2026-11-20"))  # 08:00 UTC
    sid = meta.session_id
    services.turn_write(session_id=sid, role="user", text="Do you have One Piece volume 108?", client_msg_id="u1")
    services.turn_write(session_id=sid, role="assistant", text="Yes — Vol. 108 is in stock.", client_msg_id="a1",
                        model="claude-3-haiku", latency_ms=640, tokens_in=210, tokens_out=48)
    services.turn_write(session_id=sid, role="user", text="進撃の巨人の34巻は？", client_msg_id="u2")
    services.turn_write(session_id=sid, role="assistant", text="はい、在庫がございます。", client_msg_id="a2",
                        model="claude-3-haiku", latency_ms=1320, tokens_in=390, tokens_out=52)
    return meta


def _wait_for_zone(user, zone: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if StaffProfile.objects.filter(user=user, time_zone=zone).exists():
            return
        time.sleep(0.1)
    raise AssertionError(f"the browser's zone {zone} was never stored")


def test_trace_and_aggregates_then_switch_the_time_zone(chromium, site, csp_violations, contexts):
    meta = _traced_session()
    user, page = _login(chromium, site, csp_violations, contexts, username="tz-viewer", time_zone="UTC")
    _wait_for_zone(user, "UTC")  # time-zone.js proposed the browser's zone once
    page.wait_for_selector("#tz-picker[data-tz-chosen='1']", state="attached")  # said so, without a reload
    page.goto(f"{site}/sessions/{meta.session_id}/")
    page.wait_for_selector("#timeline")

    # The per-turn trace: the bot's turn shows its model, latency and tokens.
    bot_turn = page.locator("#turn-2 .turn-head").inner_text()
    assert "claude-3-haiku" in bot_turn and "640 ms" in bot_turn and "210→48 tokens" in bot_turn
    # The session's aggregates.
    panel = page.locator("#aggregates-panel")
    assert panel.get_attribute("data-state") == "recorded"
    assert page.locator("[data-agg=turns]").inner_text() == "4"
    assert page.locator("[data-agg=tokens]").inner_text() == "600 in · 100 out"
    latency = page.locator("[data-agg=latency]").inner_text()
    assert "mean 980 ms" in latency and "p95" in latency and "over 2 bot turns" in latency
    assert page.locator("[data-agg=cost]").inner_text().startswith("$0.000275")  # (600×0.25 + 100×1.25)/1M
    assert page.locator("#aggregates-models tr[data-model='claude-3-haiku']").count() == 1

    # Times carry their zone: UTC, the browser's.
    assert page.locator("#meta-panel dt:text-is('Started') + dd").inner_text() == "2026-11-20 08:00:00 UTC"
    assert page.locator("#tz-current").inner_text() == "UTC"
    shot(page, "trace-aggregates-utc-1280")

    # Switch to Tokyo from the header: every time moves 9 hours and says JST.
    page.click("#tz-picker summary")
    page.fill("#tz-input", "Asia/Tokyo")
    page.click("#tz-submit")
    page.wait_for_url(f"**/sessions/{meta.session_id}/")
    assert page.locator("#tz-current").inner_text() == "Asia/Tokyo"
    assert page.locator("#meta-panel dt:text-is('Started') + dd").inner_text() == "2026-11-20 17:00:00 JST"
    times = page.locator("#timeline time").all_inner_texts()
    assert times and all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d JST", t) for t in times)
    shot(page, "trace-aggregates-jst-1280")

    # An unknown zone is refused with the form's error, and nothing changes.
    page.click("#tz-picker summary")
    page.fill("#tz-input", "Mars/Olympus_Mons")
    page.click("#tz-submit")
    page.wait_for_selector("#time-zone-page [data-field=time_zone]")
    assert "is not a time zone" in page.inner_text("#time-zone-page")
    assert StaffProfile.objects.get(user=user).time_zone == "Asia/Tokyo"


def test_the_browsers_zone_is_the_default(chromium, site, csp_violations, contexts):
    meta = make_session(started_at=at("2026-11-20"))
    user, page = _login(chromium, site, csp_violations, contexts, username="tz-nyc", time_zone="America/New_York")
    _wait_for_zone(user, "America/New_York")
    # ... and reloaded the page to show it
    page.wait_for_function("(document.getElementById('tz-current') || {}).textContent === 'America/New_York'")
    page.goto(f"{site}/sessions/{meta.session_id}/")
    assert page.locator("#meta-panel dt:text-is('Started') + dd").inner_text() == "2026-11-20 03:00:00 EST"
    assert page.locator("#tz-picker").get_attribute("data-tz-chosen") == "1"
