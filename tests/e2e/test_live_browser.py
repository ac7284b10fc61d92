"""The live console in Chromium: a supervisor watches a session's detail page while the bot
appends turns and asks for a human through the HTTP API; the change feed (a real stream consumer) publishes them, the
SSE server (sessions_app.live, uvicorn in a thread) pushes them, and the page shows them without
a reload."""

from __future__ import annotations

import copy
import json
import threading
import time
import urllib.request

import pytest

from sessions_app.live import EventsApp
from sessions_app.realtime import keys as rkeys
from sessions_app.services import session_start
from sessions_app.services.api_keys import api_key_create
from sessions_app.services.handoff import handoff_request
from sessions_app.services.turns import turn_append
from sessions_app.streams.consumer import StreamConsumer, stream_arn_of
from sessions_app.streams.dispatch import handlers_from_settings
from tests.fixtures.celery_workers import wait_for
from tests.live.conftest import _share_connections, _unshare_connections, start_server, stop_server

pytestmark = pytest.mark.e2e


def _off_this_thread(fn, *args):
    """Run ``fn`` in a fresh thread: Playwright's sync API keeps an event loop running in this
    one, and the connection sharing below starts one of its own (asyncio.run)."""
    out = []
    worker = threading.Thread(target=lambda: out.append(fn(*args)))
    worker.start()
    worker.join(30)
    return out[0] if out else None


def pages_stream_from(server, settings) -> None:
    """The console's pages name ``server`` as their SSE origin (and the CSP lets them connect)."""
    origin = f"http://localhost:{server.port}"  # the live server's host: the session cookie is sent
    settings.SSE_ORIGIN = origin
    policy = copy.deepcopy(settings.CONTENT_SECURITY_POLICY)
    policy["DIRECTIVES"]["connect-src"] = [*policy["DIRECTIVES"]["connect-src"], origin]
    settings.CONTENT_SECURITY_POLICY = policy


@pytest.fixture
def live_stack(site, settings):
    """The SSE server for ``site``'s pages and a stream consumer thread, for one test."""
    settings.STREAM_POLL_SECONDS = 0.05
    settings.STREAM_LEASE_SECONDS = 5.0
    overrides = _off_this_thread(_share_connections)
    server = start_server(EventsApp(console_origins=[site], keepalive=1.0, retry_ms=1000))
    pages_stream_from(server, settings)
    consumer = StreamConsumer(stream_arn=stream_arn_of(), handlers=handlers_from_settings(), consumer_id="e2e")
    thread = threading.Thread(target=consumer.run, name="stream-consumer", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        consumer.stop()
        thread.join(15)
        stop_server(server)
        _off_this_thread(_unshare_connections, overrides)


def _bot_post(site: str, key: str, path: str, body: dict) -> int:
    """The bot runtime's call: ``POST /api/v1<path>`` on the live server with its API key."""
    request = urllib.request.Request(f"{site}/api/v1{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_new_turns_appear_on_the_detail_page_without_a_reload(make_page, site, live_stack, redis_client):
    meta, _ = session_start(customer_id="cust-live", channel="web")
    turn_append(session_id=meta.session_id, role="user", text="ワンピース 105巻はありますか？", client_msg_id="u1")
    page = make_page(group="Supervisor")
    page.goto(f"{site}/sessions/{meta.session_id}/")
    page.evaluate("window.__notReloaded = true")
    channel = rkeys.events_session_channel(session_id=meta.session_id)
    wait_for(lambda: dict(redis_client.pubsub_numsub(channel)).get(channel.encode(), 0) >= 1, timeout=15,
             what="the page's stream to subscribe")

    bot_key = api_key_create(name="bot-runtime", scope="write")[1]
    started = time.monotonic()
    assert _bot_post(site, bot_key, f"/sessions/{meta.session_id}/turns",
                     {"role": "assistant", "text": "在庫がございます <b>限定版</b>", "client_msg_id": "a1"}) == 201
    shown = page.locator("#timeline").get_by_text("在庫がございます <b>限定版</b>")
    shown.wait_for(timeout=15_000)
    shown_after = time.monotonic() - started
    assert page.evaluate("window.__notReloaded") is True  # pushed in, not a reload
    assert "&lt;b&gt;限定版&lt;/b&gt;" in shown.evaluate("e => e.innerHTML")  # chat text is escaped
    print(f"turn shown {shown_after * 1000:.0f} ms after the append")

    assert _bot_post(site, bot_key, f"/sessions/{meta.session_id}/handoff",
                     {"reason": "customer asks for a person"}) == 200
    page.locator("#handoff-panel").get_by_text("customer asks for a person").wait_for(timeout=15_000)
    assert page.evaluate("window.__notReloaded") is True


def test_an_agent_takes_over_and_replies_from_the_page(make_page, site):
    from sessions_app.selectors import session_get

    meta, _ = session_start(customer_id="cust-agent", channel="app")
    turn_append(session_id=meta.session_id, role="user", text="The cover of vol. 3 is torn", client_msg_id="u1")
    handoff_request(session_id=meta.session_id, reason="damaged copy")
    page = make_page(group="Agent")
    page.goto(f"{site}/sessions/{meta.session_id}/")
    page.click("#takeover-button")
    page.locator("#reply-button").wait_for()
    owner = session_get(session_id=meta.session_id, consistent=True).owner
    assert owner == "agent-0"
    page.fill("#handoff-panel textarea", "Sorry about that — a replacement ships today.")
    page.click("#reply-button")
    page.locator("#timeline").get_by_text("Sorry about that — a replacement ships today.").wait_for()
    stored = session_get(session_id=meta.session_id, consistent=True)
    assert int(stored.turn_count) == 2
