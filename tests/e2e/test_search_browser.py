"""End-to-end: transcript search in Chromium — "/" focuses the top bar's box, a query + Enter
shows results, a script in a result stays text, and a result for an old turn opens the detail
page scrolled to that turn and marked (rendered down to it, or loaded by timeline-find.js past
the page's bound). Every page is watched for CSP refusals (``csp_violations``)."""

from __future__ import annotations

import uuid

import pytest

from sessions_app import services
from sessions_app.services.search_index import search_reindex_sessions
from tests.builders import make_session
from tests.e2e.conftest import PHONE, shot

pytestmark = pytest.mark.e2e

IN_VIEW = """el => { const r = el.getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight; }"""


def unique_word() -> str:
    return "zq" + "".join(chr(ord("g") + int(c)) if c.isdigit() else c for c in uuid.uuid4().hex[:10])


def _session(*, turns: int, special: dict[int, str], customer_id: str = "cust-search", channel: str = "web") -> str:
    """A session of ``turns`` turns, turn n's text ``special[n]`` or filler; indexed at once."""
    meta = make_session(customer_id=customer_id, channel=channel)
    for n in range(1, turns + 1):
        services.turn_write(session_id=meta.session_id, role="user" if n % 2 else "assistant",
                            text=special.get(n, f"turn {n} text"), client_msg_id=f"t-{n}")
    search_reindex_sessions(session_ids=[meta.session_id])
    return meta.session_id


def test_slash_focuses_the_box_and_enter_shows_results(make_page, site):
    word = unique_word()
    session_id = _session(turns=2, special={1: f"Do you have {word} volume 3?", 2: f"Yes, {word} vol. 3 is in stock."})
    page = make_page(group="Viewer")
    assert page.evaluate("document.activeElement === document.body")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "topbar-q"
    assert page.input_value("#topbar-q") == ""  # the "/" itself is not typed
    assert page.locator("#search-index").count() == 1  # the overview's index panel
    shot(page, "search-box-overview-1280")
    page.keyboard.type(f"{word} stock")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search/?q=**")
    page.wait_for_selector(".search-session")
    assert page.locator(".search-session").count() == 1
    assert page.get_attribute(".search-session", "data-session-id") == session_id
    hits = page.locator(".search-hit")
    assert hits.count() == 1 and "#2 assistant" in hits.first.inner_text()
    assert page.locator(".search-hit mark").all_inner_texts() == [word, "stock"]
    assert "newest change indexed" in page.inner_text("#search-index") or "no change" in page.inner_text("#search-index")
    # On the search page "/" goes to its own query box.
    page.locator("h1").click()
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "id_q"
    shot(page, "search-results-1280")


def test_slash_is_typed_where_someone_is_typing(make_page, site):
    page = make_page(group="Viewer")
    page.goto(f"{site}/sessions/")
    page.click("#id_customer")
    page.keyboard.type("a/b")
    assert page.input_value("#id_customer") == "a/b"
    assert page.evaluate("document.activeElement.id") == "id_customer"
    # Into the top bar's box itself, too: a query may hold a "/".
    page.click("#topbar-q")
    page.keyboard.type("1/2")
    assert page.input_value("#topbar-q") == "1/2"


def test_a_script_in_a_result_is_inert_text(make_page, site):
    word = unique_word()
    payload = f'<script>window.__pwned = 1; alert("x")</script> {word} <img src=x onerror="window.__pwned = 2">'
    _session(turns=1, special={1: payload})
    page = make_page(group="Viewer", viewport=PHONE)
    dialogs = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{site}/search/?q={word}")
    page.wait_for_selector(".search-hit")
    assert page.evaluate("window.__pwned") is None and dialogs == []
    assert page.locator(".search-hit .hit-snippet").inner_text() == payload
    assert page.locator(".search-hit mark").inner_text() == word
    assert page.locator(".search-hit script, .search-hit img").count() == 0
    shot(page, "search-xss-phone")


def _open_result_and_check_the_turn(page, site, word: str, seq: int) -> None:
    page.goto(f"{site}/search/?q={word}")
    page.click(f".search-hit[data-seq='{seq}'] a.hit-link")
    page.wait_for_url(f"**/sessions/**?turn={seq}#turn-{seq}")
    turn = page.locator(f"#turn-{seq}")
    turn.wait_for()
    page.wait_for_function(f"() => document.querySelector('#turn-{seq}').classList.contains('turn--found')")
    page.wait_for_function(f"() => ({IN_VIEW})(document.querySelector('#turn-{seq}'))")
    assert word in turn.inner_text()
    assert page.locator(".turn--found").count() == 1


def test_a_result_for_an_old_turn_opens_the_detail_page_scrolled_to_it_and_marked(make_page, site):
    word = unique_word()
    session_id = _session(turns=130, special={10: f"the {word} question, long ago"})
    page = make_page(group="Viewer")
    _open_result_and_check_the_turn(page, site, word, 10)
    assert page.locator("li.turn").count() == 130  # rendered down to it: whole pages of 50
    shot(page, "search-found-old-turn-1280")
    # The page's live refresh (polling here: this live server has no SSE stream) keeps the turns
    # shown and the mark.
    with page.expect_request(lambda r: f"/sessions/{session_id}/turns/?down_to=1" in r.url, timeout=20_000):
        pass
    page.wait_for_timeout(300)
    assert page.locator("li.turn").count() == 130
    assert "turn--found" in page.get_attribute("#turn-10", "class")


def test_past_the_pages_bound_the_script_loads_older_turns_until_it_finds_the_turn(make_page, site, monkeypatch):
    from sessions_app.selectors import detail

    monkeypatch.setattr(detail, "DETAIL_FIND_MAX_TURNS", 50)  # the live server runs in this process
    word = unique_word()
    _session(turns=130, special={7: f"an old {word} message"})
    page = make_page(group="Viewer")
    loads = []
    page.on("request", lambda r: loads.append(r.url) if "/turns/?cursor=" in r.url else None)
    _open_result_and_check_the_turn(page, site, word, 7)
    assert len(loads) == 2  # 81–130 rendered, then 31–80 and 1–30 loaded
    assert page.locator("li.turn").count() == 130 and page.locator("text=Start of the conversation.").count() == 1


def test_a_summary_result_opens_the_summary_panel(make_page, site):
    from sessions_app.selectors.sessions import session_get
    from sessions_app.services.summaries import summary_write

    word = unique_word()
    session_id = _session(turns=2, special={})
    summary_write(session_id=session_id, through_seq=2, text=f"The customer asked about {word}.", generator="test",
                  expires_at=session_get(session_id=session_id).expires_at)
    search_reindex_sessions(session_ids=[session_id])
    page = make_page(group="Viewer")
    page.goto(f"{site}/search/?q={word}")
    page.click(".search-hit.role-summary a.hit-link")
    page.wait_for_url(f"**/sessions/{session_id}/#summary-panel")
    panel = page.locator("#summary-panel")
    assert word in panel.inner_text()
    assert page.evaluate(f"({IN_VIEW})(document.querySelector('#summary-panel h2'))")
