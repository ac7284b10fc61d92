"""End-to-end: the top bar's lookup box in Chromium — an 8-character id prefix typed on any page
lands on the session; a customer prefix in another case lands on the customer; the session list
shows each row's id (screenshot ``session-list.png``)."""

from __future__ import annotations

import re

import pytest

from tests.builders import at, make_session
from tests.e2e.conftest import PHONE, shot

pytestmark = pytest.mark.e2e


def test_an_id_prefix_in_the_top_bar_lands_on_the_session(make_page, site):
    target = make_session(customer_id="cust-0018", session_id="7a3f9c1e5b2d4f60a8e1c3b5d7f9a2c4",
                          started_at=at("2026-11-20", 3), turns=2)
    make_session(customer_id="CUST-0010", session_id="7a3f9c1f00000000aaaabbbbccccdddd", started_at=at("2026-11-20", 2))
    for n in range(4):
        make_session(customer_id=f"cust-{n:04d}", started_at=at("2026-11-20", 10 + n))
    page = make_page(group="Viewer")
    # From the overview: the first 8 characters, typed in capitals, and Enter.
    page.fill("#topbar-lookup", "7A3F9C1E")
    page.press("#topbar-lookup", "Enter")
    page.wait_for_url(f"{site}/sessions/{target.session_id}/")
    page.wait_for_selector("#timeline")
    shot(page, "lookup-landed-on-session")

    # Seven characters (both sessions start so) are too few; nine name the one session again.
    page.fill("#topbar-lookup", "7a3f9c1")
    page.press("#topbar-lookup", "Enter")
    page.wait_for_selector("#lookup-error")
    assert "at least 8 characters" in page.inner_text("#lookup-error")
    page.fill("#topbar-lookup", "7a3f9c1e5")
    page.press("#topbar-lookup", "Enter")
    page.wait_for_url(f"{site}/sessions/{target.session_id}/")

    # A customer id prefix in another case: the one customer matching.
    page.fill("#topbar-lookup", "CUST-0018")
    page.press("#topbar-lookup", "Enter")
    page.wait_for_url(f"{site}/customers/cust-0018/")

    # The session list: every row shows its session id (truncated, the whole id in the title).
    page.goto(f"{site}/sessions/?day_from=2026-11-20&day_to=2026-11-20")
    rows = page.locator("table.sessions tbody tr")
    assert rows.count() == 6
    ids = page.locator("table.sessions td.session-id code")
    assert ids.count() == 6
    assert ids.first.get_attribute("title") and re.fullmatch(r"[0-9a-f]{12}…", ids.first.inner_text())
    assert page.locator(f'td.session-id code[title="{target.session_id}"]').inner_text() == "7a3f9c1e5b2d…"
    assert page.evaluate("getComputedStyle(document.querySelector('td.session-id code')).fontFamily").lower().find("mono") >= 0
    shot(page, "session-list")


def test_the_lookup_box_lists_several_matches_at_phone_width(make_page, site):
    for n in range(3):
        make_session(customer_id=f"Reader-{n}", session_id=f"c0ffee00-reader-{n}")
    page = make_page(group="Viewer", viewport=PHONE)
    page.fill("#topbar-lookup", "C0FFEE00")
    page.press("#topbar-lookup", "Enter")
    page.wait_for_selector("#lookup-results")
    assert page.locator("#lookup-results td.session-id code").count() == 3
    page.fill("#topbar-lookup", "reader")
    page.press("#topbar-lookup", "Enter")
    page.wait_for_selector("#lookup-results ul.customer-matches")
    assert page.locator("#lookup-results ul.customer-matches a").count() == 3
    shot(page, "lookup-customers-390")
    page.click("text=Reader-1")
    page.wait_for_url(f"{site}/customers/Reader-1/")
