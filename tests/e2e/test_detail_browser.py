"""End-to-end: a long conversation on the session page in Chromium — "First turn" and "Go to
turn" without paging through "Load older turns", the order toggle, a collapsed 10 KB turn that
expands, find in transcript, turn anchors, and the close confirmation dialog. Every page is
watched for CSP refusals (``csp_violations``)."""

from __future__ import annotations

import pytest

from sessions_app import services
from sessions_app.models import SessionMeta
from sessions_app.selectors import detail
from tests.builders import make_session
from tests.e2e.conftest import shot

pytestmark = pytest.mark.e2e

IN_VIEW = """el => { const r = el.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }"""
WORD = "Kamehameha"
LONG_SEQ = 3


def _long_session(turns: int = 200):
    """``turns`` turns appended through the service; turn 3 is a 10 KB text with the find word
    past its preview, turns 2 and 40 name the word too."""
    meta = make_session(customer_id="cust-long-e2e")
    long_text = ("This volume list goes on. " * (detail.LONG_TURN_BYTES // 26 + 40)) + f"The end: {WORD}."
    assert len(long_text.encode()) >= detail.LONG_TURN_BYTES
    special = {2: f"Do you have {WORD} posters?", LONG_SEQ: long_text, 40: f"{WORD} again, volume 40."}
    for n in range(1, turns + 1):
        services.turn_write(session_id=meta.session_id, role="user" if n % 2 else "assistant",
                            text=special.get(n, f"turn {n} text"), client_msg_id=f"e-{n}")
    return meta


def _seqs(page) -> list[int]:
    return page.eval_on_selector_all("#timeline li.turn", "els => els.map(e => parseInt(e.id.slice(5), 10))")


def test_a_long_conversation_first_turn_order_long_turns_and_find(make_page, site):
    meta = _long_session()
    page = make_page(group="Viewer")
    older_loads = []
    page.on("request", lambda r: older_loads.append(r.url) if "/turns/?cursor=" in r.url else None)
    page.goto(f"{site}/sessions/{meta.session_id}/")
    assert _seqs(page) == list(range(200, 150, -1))

    # First turn: the server renders the window around it — no "Load older turns" clicked.
    page.click("#first-turn-link")
    page.wait_for_url(f"**/sessions/{meta.session_id}/?at=1#turn-1")
    first = page.locator("#turn-1")
    first.wait_for()
    page.wait_for_function("() => document.querySelector('#turn-1').classList.contains('turn--found')")
    page.wait_for_function(f"() => ({IN_VIEW})(document.querySelector('#turn-1'))")
    assert first.is_visible() and older_loads == []
    assert _seqs(page) == list(range(50, 0, -1))  # 50 turns on the page, not 200
    assert page.locator("text=Start of the conversation.").is_visible()

    # The newer turns are one click away and keep coming.
    page.click("#load-newer button")
    page.wait_for_selector("#turn-100")
    assert _seqs(page)[:2] == [100, 99] and page.locator("#load-newer").count() == 1

    # The order toggle: oldest first, kept in the URL, at the same turn.
    page.click("#order-oldest")
    page.wait_for_url("**order=oldest**")
    assert "at=1" in page.url
    assert _seqs(page) == list(range(1, 51))
    assert page.get_attribute("#order-oldest", "aria-current") == "true"
    page.click("#load-newer button")
    page.wait_for_selector("#turn-100")
    assert _seqs(page) == list(range(1, 101))  # newer turns below, still oldest first

    # The 10 KB turn is collapsed; "show all" expands it (a <details>: no script needed).
    long_turn = page.locator(f"#turn-{LONG_SEQ}")
    details = long_turn.locator("details.turn-long")
    assert details.get_attribute("open") is None
    assert long_turn.locator(".turn-preview").is_visible()
    assert not long_turn.locator("details .turn-text").is_visible()
    long_turn.locator("summary").click()
    assert details.get_attribute("open") is not None
    assert long_turn.locator("details .turn-text").is_visible() and not long_turn.locator(".turn-preview").is_visible()
    assert f"The end: {WORD}." in long_turn.locator("details .turn-text").inner_text()
    long_turn.locator("summary").click()  # and collapses again
    assert details.get_attribute("open") is None

    # Find in transcript: across the turns on the page (the collapsed text too), counted, Next / Previous.
    page.fill("#find-q", WORD)
    page.wait_for_function("() => document.getElementById('find-bar').dataset.matches === '3'")
    assert page.inner_text("#find-status") == "3 matches in the 100 turns on the page (of 200)."
    page.press("#find-q", "Enter")
    page.wait_for_function("() => document.querySelector('#turn-2').classList.contains('find-current')")
    assert page.inner_text("#find-status").startswith("1 of 3 matches")
    page.click("#find-next")
    page.wait_for_function(f"() => document.querySelector('#turn-{LONG_SEQ}').classList.contains('find-current')")
    assert details.get_attribute("open") is not None  # the match in the long turn opened it
    page.click("#find-next")
    page.wait_for_function("() => document.querySelector('#turn-40').classList.contains('find-current')")
    page.wait_for_function(f"() => ({IN_VIEW})(document.querySelector('#turn-40'))")
    assert page.inner_text("#find-status").startswith("3 of 3")
    page.click("#find-prev")
    assert page.inner_text("#find-status").startswith("2 of 3")
    page.fill("#find-q", "no such words anywhere")
    page.wait_for_function("() => document.getElementById('find-bar').dataset.matches === '0'")
    assert page.inner_text("#find-status").startswith("No match")
    page.fill("#find-q", "")

    # Go to turn N: a window around it, marked and in view.
    page.fill("#goto-turn", "120")
    page.click("#goto-form button")
    page.wait_for_url("**at=120**")
    page.wait_for_function("() => document.querySelector('#turn-120').classList.contains('turn--found')")
    page.wait_for_function(f"() => ({IN_VIEW})(document.querySelector('#turn-120'))")
    assert _seqs(page) == list(range(96, 146)) and "order=oldest" in page.url
    shot(page, "detail-long")
    assert older_loads == []


def test_turn_anchors_scroll_to_the_turn_and_reach_one_not_on_the_page(make_page, site):
    meta = _long_session(turns=120)
    page = make_page(group="Viewer")
    # A turn on the page: its anchor scrolls to it.
    page.goto(f"{site}/sessions/{meta.session_id}/#turn-90")
    page.wait_for_function(f"() => ({IN_VIEW})(document.querySelector('#turn-90'))")
    assert page.evaluate("document.querySelector('#turn-90').matches(':target')")
    # Its number is the link.
    page.click("#turn-75 a.turn-link")
    assert page.url.endswith("#turn-75")
    # A turn older than the page: the page asks for a window around it.
    page.goto(f"{site}/sessions/{meta.session_id}/#turn-7")
    page.wait_for_url(f"**/sessions/{meta.session_id}/?at=7#turn-7")
    page.wait_for_function(f"() => ({IN_VIEW})(document.querySelector('#turn-7'))")
    assert page.locator("#turn-7.turn--found").count() == 1
    # A search result's link (?turn=N#turn-N) still renders down to the turn.
    page.goto(f"{site}/sessions/{meta.session_id}/?turn=30#turn-30")
    page.wait_for_function("() => document.querySelector('#turn-30').classList.contains('turn--found')")
    page.wait_for_function(f"() => ({IN_VIEW})(document.querySelector('#turn-30'))")


def test_close_asks_for_confirmation_cancel_keeps_it_open_confirm_closes(make_page, site):
    meta = make_session(turns=4, customer_id="cust-close-e2e")
    page = make_page()  # a Supervisor
    page.goto(f"{site}/sessions/{meta.session_id}/")
    dialog = page.locator("#close-confirm")
    assert not dialog.is_visible()
    page.click("#close-button")
    dialog.wait_for(state="visible")
    assert page.evaluate("document.getElementById('close-confirm').matches(':modal')")
    assert ("Closing ends the conversation: the bot's next append gets 409 session_closed, heartbeats are "
            "refused, and a summary is requested.") in dialog.inner_text()
    assert page.url == f"{site}/sessions/{meta.session_id}/"  # the dialog, not the confirm page
    shot(page, "detail-close-confirm")
    page.click("#close-cancel")
    dialog.wait_for(state="hidden")
    assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "active"
    assert page.locator("#meta-panel .status-active").count() == 1
    # Escape cancels too.
    page.click("#close-button")
    dialog.wait_for(state="visible")
    page.keyboard.press("Escape")
    dialog.wait_for(state="hidden")
    assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "active"
    # Confirm: closed, and the page says so at once.
    page.click("#close-button")
    dialog.wait_for(state="visible")
    page.click("#close-confirm-button")
    page.wait_for_selector("#meta-panel .status-closed")
    assert "Session closed." in page.inner_text(".messages")
    assert page.locator("#close-button").count() == 0
    assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "closed"


def test_without_javascript_close_is_a_confirm_page(chromium, site, csp_violations):
    """JavaScript off: the button's link is the confirmation page (the same dialog, open), whose
    form posts the confirmation."""
    from tests.e2e.conftest import DESKTOP, _user

    meta = make_session(turns=2, customer_id="cust-nojs")
    _user("sup-nojs", "Supervisor")
    context = chromium.new_context(viewport=DESKTOP, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(site + "/accounts/login/")
        page.fill("#id_username", "sup-nojs")
        page.fill("#id_password", "pw-sup-nojs-123")
        page.click("button[type=submit]")
        page.wait_for_url(site + "/")
        page.goto(f"{site}/sessions/{meta.session_id}/")
        page.click("#close-button")
        page.wait_for_url("**?confirm=close#close-confirm")
        dialog = page.locator("#close-confirm")
        assert dialog.is_visible() and "heartbeats are refused" in dialog.inner_text()
        assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "active"
        page.click("#close-confirm-button")
        page.wait_for_selector("#meta-panel .status-closed")
        assert SessionMeta.get(meta.pk, meta.sk, consistent_read=True).status == "closed"
    finally:
        context.close()
