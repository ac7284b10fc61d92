"""End-to-end (Chromium): the pages around the console's main flow — the "no console role" 403 page
and its log-out, the overview as support staff see it, the "show read paths" toggle, the admin's
pages, and the session list on a 390 px phone with its labels. Screenshots under
test-artifacts/screenshots/."""

from __future__ import annotations

import pytest

from sessions_app import services
from sessions_app.realtime import presence_heartbeat
from sessions_app.services.handoff import handoff_request
from tests.builders import make_session
from tests.e2e.conftest import DESKTOP, PHONE, shot

pytestmark = pytest.mark.e2e

NO_ROLE = "Your account has no console role yet: ask a Supervisor to add you to Viewer, Agent or Supervisor"


def _login(page, site: str, username: str, password: str) -> None:
    page.goto(site + "/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def _sessions(n: int = 4):
    metas = []
    for i in range(n):
        meta = make_session(customer_id=f"cust-{i:04d}", channel=("web", "line", "app")[i % 3])
        for t in range(4):
            services.turn_write(session_id=meta.session_id, role="user" if t % 2 == 0 else "assistant",
                                text=("Do you have One Piece volume 108?", "Yes, it is in stock.")[t % 2],
                                client_msg_id=f"m-{i}-{t}", latency_ms=None if t % 2 == 0 else 400.0 + 100 * i)
        metas.append(meta)
    return metas


def test_an_account_without_a_group_logs_out_from_the_403_page(browser_page, site):
    from django.contrib.auth.models import User

    User.objects.create_user(username="newbie", password="pw-newbie-123", is_staff=True)
    page = browser_page()
    _login(page, site, "newbie", "pw-newbie-123")
    page.wait_for_url(site + "/")
    page.wait_for_selector("#no-group")
    assert NO_ROLE in page.inner_text("#no-group")
    # No link in the top bar leads back to this page; log-out is there and on the page.
    assert page.locator("header.topbar a", has_text="Sessions").count() == 0
    assert page.locator("#topbar-logout button").is_visible()
    shot(page, "no-group-403")
    page.click("#no-group .logout-form button")
    page.wait_for_url(site + "/accounts/login/")
    assert page.locator("#id_username").is_visible()
    page.goto(site + "/")
    page.wait_for_url("**/accounts/login/?next=/")


def test_the_overview_leads_with_support_work(make_page, site):
    metas = _sessions(4)
    handoff_request(session_id=metas[0].session_id, reason="asks for a person")
    for meta in metas[:2]:
        presence_heartbeat(session_id=meta.session_id)
    page = make_page(group="Agent")
    page.wait_for_selector('[data-metric="open"]')
    assert page.inner_text('[data-metric="open"]') == "4"
    assert page.inner_text('[data-metric="online"]') == "2"
    assert page.inner_text('[data-metric="handoff-waiting"]') == "1"
    assert page.inner_text('[data-metric="bot-p95"]').endswith(" ms")
    # The system panel is collapsed: its numbers are there, out of the way.
    assert not page.locator("#operations").is_visible() and not page.locator("#change-feed").is_visible()
    shot(page, "overview")
    page.click("#system-details > summary")
    page.wait_for_selector("#operations", state="visible")
    # The poll (every 10 s) refreshes the panel's body out of band and the panel stays open.
    with page.expect_response(lambda r: "/overview/metrics/" in r.url, timeout=20_000):
        pass
    page.wait_for_timeout(300)
    assert page.locator("#operations").is_visible()
    # Open stays open on the next visit (localStorage).
    page.reload()
    page.wait_for_selector("#operations", state="visible")
    shot(page, "overview-system-open")


def test_show_read_paths_is_a_remembered_toggle(make_page, site):
    metas = _sessions(2)
    page = make_page(group="Viewer")
    page.goto(site + "/sessions/")
    read = page.locator("#session-list-region .pager .read-path")
    assert read.count() == 1 and not read.is_visible()
    toggle = page.locator("#read-paths-toggle")
    assert toggle.inner_text() == "Show read paths" and toggle.get_attribute("aria-pressed") == "false"
    toggle.click()
    assert read.is_visible() and " read · " in read.inner_text()
    assert toggle.inner_text() == "Hide read paths" and toggle.get_attribute("aria-pressed") == "true"
    # Remembered: the detail page opens with its provenance badges shown.
    page.goto(f"{site}/sessions/{metas[0].session_id}/")
    badge = page.locator(".prov.read-path").first
    badge.wait_for(state="visible")
    shot(page, "session-detail-read-paths")
    page.locator("#read-paths-toggle").click()
    assert not badge.is_visible()
    page.reload()
    assert not page.locator(".prov.read-path").first.is_visible()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_provenance_badges_stay_inside_their_cards(make_page, site, viewport):
    meta = _sessions(1)[0]
    page = make_page(group="Viewer", viewport=viewport)
    page.goto(f"{site}/sessions/{meta.session_id}/")
    page.locator("#read-paths-toggle").click()
    badges = page.locator(".card .prov.read-path")
    assert badges.count() >= 2
    for i in range(badges.count()):
        inside = badges.nth(i).evaluate(
            "b => { const c = b.closest('.card').getBoundingClientRect(), r = b.getBoundingClientRect();"
            " return r.width === 0 || (r.left >= c.left - 0.5 && r.right <= c.right + 0.5); }")
        assert inside, f"badge {i} overflows its card at {viewport['width']} px"


def test_the_session_list_on_a_phone_keeps_its_labels(make_page, site):
    _sessions(3)
    page = make_page(group="Viewer", viewport=PHONE)
    page.goto(site + "/sessions/")
    cell = page.locator("table.sessions tbody tr").first.locator('td[data-label="Customer"]')
    label = cell.evaluate("td => getComputedStyle(td, '::before').content")
    assert label == '"Customer"'
    for name in ("Started", "Turns", "Status", "Summary"):
        td = page.locator("table.sessions tbody tr").first.locator(f'td[data-label="{name}"]')
        assert td.evaluate("td => getComputedStyle(td, '::before').content") == f'"{name}"'
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "sessions-390-labels")


def _superuser_page(browser_page, site):
    from django.contrib.auth.models import User

    User.objects.create_superuser(username="root", password="pw-root-123", email="root@example.com")
    page = browser_page()
    _login(page, site, "root", "pw-root-123")
    page.wait_for_url(site + "/")
    return page


def test_admin_pages(browser_page, site):
    from sessions_app.models import AuditLog

    meta = _sessions(1)[0]
    page = _superuser_page(browser_page, site)
    for n in range(12):
        AuditLog.objects.create(actor_username="supervisor-with-a-rather-long-name", action="privacy_delete_customer",
                                outcome="ok", session_id=f"{meta.session_id}-{n}", customer_id="cust-" + "x" * 60,
                                detail={"note": "a long detail " * 6})
    page.goto(site + "/admin/")
    captions = page.locator("caption").all_inner_texts()
    assert [c.strip().upper() for c in captions].count("CHAT SESSIONS") == 1, captions
    assert "API KEYS AND AUDIT LOG" in [c.strip().upper() for c in captions]
    shot(page, "admin-index")

    page.goto(site + "/admin/sessions_app/auditlog/")
    crumbs = page.locator(".breadcrumbs")
    assert "API keys and audit log" in crumbs.inner_text() and "Chat sessions" not in crumbs.inner_text()
    # Every column is on screen: long ids wrap, the table fits its box (which would scroll, not cut off).
    results = page.locator("#changelist-form .results")
    box = results.evaluate("r => ({overflow: getComputedStyle(r).overflowX, right: r.getBoundingClientRect().right,"
                           " fits: r.scrollWidth <= r.clientWidth + 1})")
    assert box["overflow"] == "auto" and box["right"] <= DESKTOP["width"] and box["fits"], box
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert [h.strip().upper() for h in headers][-2:] == ["SESSION ID", "CUSTOMER ID"], headers
    shot(page, "admin-audit-log")
    page.click(".breadcrumbs a:has-text('API keys and audit log')")
    page.wait_for_url("**/admin/sessions_app/")
    assert page.locator("a:has-text('Audit logs')").count() >= 1

    page.goto(f"{site}/admin/chat-sessions/{meta.session_id}/")
    button = page.locator("button.deletelink")
    style = button.evaluate("b => { const s = getComputedStyle(b); return [s.backgroundColor, s.color]; }")
    assert style[0] not in ("rgba(0, 0, 0, 0)", "transparent") and style[0] != style[1], style
    shot(page, "admin-chat-session")
