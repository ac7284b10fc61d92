"""The "needs a human" queue in Chromium follows hand-offs without a reload: the bot asks for a
human through the services, the change feed (a real stream consumer) publishes the hand-off on
the activity stream, the SSE server (sessions_app.live, uvicorn in a thread) pushes it, and
live-list.js swaps the queue's partial in — and the title's count — and takes the row out again
when someone takes the session over."""

from __future__ import annotations

import re
import time

import pytest

from sessions_app.realtime import keys as rkeys
from sessions_app.selectors import overview as overview_selectors
from sessions_app.services import session_start
from sessions_app.services.handoff import handoff_request, handoff_take
from sessions_app.services.turns import turn_append
from sessions_app.live import EventsApp
from tests.e2e.test_live_browser import _off_this_thread, pages_stream_from
from tests.e2e.test_live_browser import live_stack  # noqa: F401  (the fixture: SSE server + consumer)
from tests.fixtures.celery_workers import wait_for
from tests.live.conftest import _share_connections, _unshare_connections, start_server, stop_server

pytestmark = pytest.mark.e2e


def test_the_queue_shows_a_new_hand_off_without_a_reload(make_page, site, live_stack, redis_client,  # noqa: F811
                                                          monkeypatch):
    monkeypatch.setattr(overview_selectors, "HANDOFF_COUNT_CACHE_SECONDS", 0.0)
    meta, _ = session_start(customer_id="cust-queue", channel="web")
    turn_append(session_id=meta.session_id, role="user", text="人と話したいです", client_msg_id="u1")
    page = make_page(group="Supervisor")
    page.goto(f"{site}/handoffs/")
    page.get_by_text("Nobody is waiting for a human.").wait_for()
    page.evaluate("window.__notReloaded = true")
    channel = rkeys.events_activity_channel()
    wait_for(lambda: dict(redis_client.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1, timeout=15,
             what="the page's activity stream to subscribe")

    started = time.monotonic()
    handoff_request(session_id=meta.session_id, reason="customer asks for a <b>person</b>")
    row = page.locator(f'#queue-region tr[data-session-id="{meta.session_id}"]')
    row.wait_for(timeout=15_000)
    shown_after = time.monotonic() - started
    assert page.evaluate("window.__notReloaded") is True  # swapped in, not a reload
    reason = row.locator("td.snippet")
    assert reason.inner_text() == "customer asks for a <b>person</b>"  # chat text is escaped
    assert page.locator("#queue-waiting").inner_text() == "1"
    wait_for(lambda: re.match(r"\(1\) Needs a human", page.title()), timeout=5, what="the title's count")
    assert page.locator("#nav-handoffs .count-badge").inner_text() == "1"
    print(f"hand-off shown {shown_after * 1000:.0f} ms after the request")

    handoff_take(session_id=meta.session_id, username="someone-else", display_name="Someone Else")
    row.wait_for(state="detached", timeout=15_000)
    page.get_by_text("Nobody is waiting for a human.").wait_for(timeout=5_000)
    wait_for(lambda: page.title().startswith("Needs a human"), timeout=5, what="the title's count to go")
    assert page.locator("#nav-handoffs .count-badge").count() == 0
    assert page.evaluate("window.__notReloaded") is True
    page.close()  # its stream ends now, before the SSE server stops (no cancelled stream at shutdown)


@pytest.fixture
def refusing_sse(site, settings):
    """An SSE server that refuses the console's pages (403: their origin is not its console's):
    the EventSource is closed at once, as behind a proxy that blocks streams."""
    overrides = _off_this_thread(_share_connections)
    server = start_server(EventsApp(console_origins=["https://elsewhere.example"]))
    pages_stream_from(server, settings)
    try:
        yield server
    finally:
        stop_server(server)
        _off_this_thread(_unshare_connections, overrides)


def test_without_the_stream_the_queue_says_so_and_follows_by_polling(make_page, site, refusing_sse, monkeypatch):
    monkeypatch.setattr(overview_selectors, "HANDOFF_COUNT_CACHE_SECONDS", 0.0)
    meta, _ = session_start(customer_id="cust-poll", channel="web")
    page = make_page(group="Supervisor")
    page.goto(f"{site}/handoffs/")
    status = page.locator("#live-list")
    status.get_by_text("Live updates unavailable: refreshing every 10 s.").wait_for(timeout=10_000)
    page.evaluate("window.__notReloaded = true")

    handoff_request(session_id=meta.session_id, reason="wants a person")  # no change feed here
    page.locator(f'#queue-region tr[data-session-id="{meta.session_id}"]').wait_for(timeout=25_000)
    assert page.evaluate("window.__notReloaded") is True  # the poll swapped it in
    wait_for(lambda: re.match(r"\(1\) Needs a human", page.title()), timeout=5, what="the title's count")
    page.close()
