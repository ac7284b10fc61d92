"""The overview leads with support work: who needs a human, open vs online sessions, turns, the
bot's reply time, the backlog; the system numbers (caches, change feed, latency per path) sit in
a collapsed panel at the bottom, the DAX nodes on the infrastructure page; a red band only where
the alert rules would judge (their minimum sample), "not enough traffic" below it."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from django.template.loader import render_to_string
from django.urls import reverse

from sessions_app import services
from sessions_app.models import AlertState
from sessions_app.realtime import context_cache_get, presence_heartbeat
from sessions_app.selectors import overview as overview_selectors
from sessions_app.selectors.overview import OperationsPanel
from sessions_app.services.alerts import RULES, evaluate
from sessions_app.services.handoff import handoff_request
from tests.builders import make_session

CONTEXT_RULE = "context_hit_ratio_low"


@pytest.fixture
def fresh_counts(monkeypatch):
    """Every count and the latency sample recomputed on every page (no per-process memo)."""
    monkeypatch.setattr(overview_selectors, "OPEN_COUNT_CACHE_SECONDS", 0.0)
    monkeypatch.setattr(overview_selectors, "HANDOFF_COUNT_CACHE_SECONDS", 0.0)
    monkeypatch.setattr(overview_selectors, "BOT_LATENCY_CACHE_SECONDS", 0.0)


def _metric(body: str, name: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\sdata-metric="{re.escape(name)}"[^>]*>(.*?)</\1>', body, re.S)
    assert match, f"no {name} in the page"
    return re.sub(r"<[^>]+>", "", match.group(2)).strip()


def _overview(client) -> str:
    response = client.get(reverse("dashboard:overview"))
    assert response.status_code == 200
    return response.content.decode()


def _context_tile(body: str) -> str:
    at = body.index('<span class="label">Context cache hits</span>')
    start = body.rindex("<div", 0, at)
    return body[start:body.index("</div>", at)]


# --- support first --------------------------------------------------------------------------------

def test_open_and_online_are_two_counts_named_apart(console, viewer_client, fresh_counts):
    active = make_session(turns=1)
    waiting = make_session(turns=1)
    handoff_request(session_id=waiting.session_id, reason="asks for a person")
    closed = make_session(turns=1)
    services.session_close(session_id=closed.session_id)
    make_session(turns=0)  # active, never connected
    presence_heartbeat(session_id=active.session_id)

    body = _overview(viewer_client)
    assert _metric(body, "open") == "3"  # active ×2 and handed off; not the closed one
    assert _metric(body, "online") == "1"  # a presence heartbeat now
    assert _metric(body, "handoff-waiting") == "1"
    assert "Open sessions" in body and "Online now" in body
    assert "Active sessions now" not in body
    # Support tiles come first, before the alerts and the system panel.
    assert body.index('data-metric="handoff-waiting"') < body.index('data-metric="open"') \
        < body.index('data-metric="online"') < body.index('id="alerts"') < body.index('id="system-details"')


def test_the_open_count_is_memoised_for_a_few_seconds(console, monkeypatch):
    monkeypatch.setattr(overview_selectors, "OPEN_COUNT_CACHE_SECONDS", 3600.0)
    make_session()
    assert overview_selectors.open_sessions_count() == 1
    make_session()
    assert overview_selectors.open_sessions_count() == 1  # this process's count, a moment old
    monkeypatch.setattr(overview_selectors, "OPEN_COUNT_CACHE_SECONDS", 0.0)
    assert overview_selectors.open_sessions_count() == 2


def test_the_bot_reply_time_is_the_p95_of_the_online_sessions_replies(console, viewer_client, fresh_counts):
    one = make_session()
    two = make_session()
    latencies = [100.0 * n for n in range(1, 21)]  # 100 … 2000 ms: nearest-rank p95 is 1900 ms
    for n, latency in enumerate(latencies):
        meta = one if n % 2 else two
        services.turn_write(session_id=meta.session_id, role="user", text="q", client_msg_id=f"q-{n}")
        services.turn_write(session_id=meta.session_id, role="assistant", text="a", client_msg_id=f"a-{n}",
                            latency_ms=latency)
    offline = make_session()
    services.turn_write(session_id=offline.session_id, role="assistant", text="a", client_msg_id="slow",
                        latency_ms=60_000)
    body = _overview(viewer_client)
    assert _metric(body, "bot-p95") == "n/a" and _metric(body, "bot-p95-sample") == "nobody online now"
    presence_heartbeat(session_id=one.session_id)
    presence_heartbeat(session_id=two.session_id)

    found = overview_selectors.bot_latency()
    # The newest BOT_LATENCY_TURNS turns of each session: 5 replies each.
    assert found.sessions == 2 and found.replies == 2 * overview_selectors.BOT_LATENCY_TURNS // 2
    shown = sorted(latencies[10:])  # the newest five of each session: 1100 … 2000 ms
    assert found.p95_ms == shown[-(-95 * len(shown) // 100) - 1]
    body = _overview(viewer_client)
    assert _metric(body, "bot-p95") == f"{found.p95_ms:.0f} ms"
    assert _metric(body, "bot-p95-sample").startswith("10 bot replies of the last 15 min, 2 most recently online")


def test_system_numbers_are_in_a_collapsed_panel_and_the_dax_nodes_on_infrastructure(console, viewer_client):
    body = _overview(viewer_client)
    details = body[body.index('<details class="card system-details"'):body.index("</details>", body.index(
        'id="system-details-body"'))]
    assert "<details" in details and " open" not in details.split(">", 1)[0]
    for panel in ('id="operations"', 'id="change-feed"', 'id="fleet"', 'data-metric="dax-item"',
                  'data-metric="ctx"', 'id="chart-cache"', "Call latency by path"):
        assert panel in details, panel
    assert 'id="dax-cluster"' not in body
    assert body.index('id="activity"') < body.index('id="system-details"')
    # A Viewer is not pointed at a page it may not open.
    assert 'href="/infrastructure/"' not in details
    # The poll refreshes the panel's body out of band: the <details> (open or not) stays.
    partial = viewer_client.get(reverse("dashboard:overview_metrics"), HTTP_HX_REQUEST="true").content.decode()
    assert '<div id="system-details-body" hx-swap-oob="innerHTML">' in partial and 'id="operations"' in partial
    assert "<details class=\"card system-details\"" not in partial


def test_a_supervisor_is_pointed_at_the_infrastructure_page(console, supervisor_client):
    body = _overview(supervisor_client)
    assert 'DAX nodes, the table and Redis on <a href="/infrastructure/">Infrastructure</a>' in body


# --- minimum samples ------------------------------------------------------------------------------

def test_the_context_cache_band_and_the_alert_rule_share_their_minimum_sample(console, viewer_client, settings):
    settings.ALERT_MIN_REQUESTS = 5
    settings.DAX_STATS_URL = None
    meta = make_session(turns=1)
    rule = next(r for r in RULES if r.name == CONTEXT_RULE)
    assert rule.min_sample() == 5
    for _ in range(3):  # three misses: 0 %, but three lookups judge nothing
        context_cache_get(session_id=meta.session_id, variant="t20")
    tile = _context_tile(_overview(viewer_client))
    assert 'data-alert="off"' in tile and "alert-band" not in tile
    assert "0.0 %" in tile and "not enough traffic to judge: 3 of the 5 lookups the alert needs" in tile
    evaluate()
    state = AlertState.objects.get(rule=CONTEXT_RULE)
    assert state.state == AlertState.STATE_OK and "3 context loads" in state.check_note
    assert "fewer than the 5 needed" in state.check_note

    for _ in range(2):  # five lookups: both judge, both red
        context_cache_get(session_id=meta.session_id, variant="t20")
    tile = _context_tile(_overview(viewer_client))
    assert 'data-alert="on"' in tile and "alert-band" in tile and "not enough traffic" not in tile
    assert "below 80.0 % over 5 lookups" in tile
    evaluate()
    assert AlertState.objects.get(rule=CONTEXT_RULE).state == AlertState.STATE_FIRING


def _operations(**overrides) -> OperationsPanel:
    values = dict(window_seconds=900.0, mode="process", latency=[], http_requests=0, http_5xx=0, http_error_rate=None,
                  dynamodb_errors=[], redis_errors=0, degraded=[], enqueue_failures=[], appends=[], context_loads=[],
                  breaker_open_processes=0, http_min_requests=50, http_error_threshold=0.05)
    values.update(overrides)
    return OperationsPanel(**values)


def _server_errors_tile(panel: OperationsPanel) -> str:
    body = render_to_string("dashboard/partials/operations_panel.html", {"m": SimpleNamespace(operations=panel)})
    at = body.index('<span class="label">Server errors</span>')
    return body[body.rindex("<div", 0, at):body.index("</div>", at)]


def test_the_server_error_band_needs_the_error_rate_rules_minimum(settings):
    from sessions_app.selectors.alerts import min_http_requests

    settings.ALERT_MIN_HTTP_REQUESTS = 50
    rule = next(r for r in RULES if r.name == "http_error_rate_high")
    assert rule.min_sample() == min_http_requests() == 50
    thin = _server_errors_tile(_operations(http_requests=3, http_5xx=3, http_error_rate=1.0))
    assert "alert-band" not in thin and 'data-alert="off"' in thin
    assert "not enough traffic to judge (the alert needs 50)" in thin and "100.0 %" in thin
    judged = _server_errors_tile(_operations(http_requests=50, http_5xx=5, http_error_rate=0.1))
    assert "alert-band" in judged and 'data-alert="on"' in judged and "not enough traffic" not in judged
    fine = _server_errors_tile(_operations(http_requests=100, http_5xx=1, http_error_rate=0.01))
    assert "alert-band" not in fine and "not enough traffic" not in fine


def test_the_overview_operations_panel_takes_the_minimum_from_the_settings(console, settings):
    settings.ALERT_MIN_HTTP_REQUESTS = 7
    settings.ALERT_ERROR_RATE_ABOVE = 0.2
    panel = overview_selectors.operations_panel()
    assert panel.http_min_requests == 7 and panel.http_error_threshold == 0.2


# --- the "show read paths" toggle -----------------------------------------------------------------

def test_read_paths_are_behind_the_top_bar_toggle(console, viewer_client):
    from django.contrib.staticfiles import finders

    meta = make_session(turns=2)
    listing = viewer_client.get(reverse("dashboard:session_list")).content.decode()
    assert '<button type="button" class="link read-paths-toggle" id="read-paths-toggle" aria-pressed="false"' in listing
    assert '<script src="/static/dashboard/read-paths.js" defer></script>' in listing
    # The list's read summary ("25 read · 3010.65 ms") is a read path.
    assert re.search(r'<span class="read-path"> · \d+ read · [\d.]+ ms</span>', listing)
    detail = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    # Every provenance badge is a read path (partials/provenance.html).
    assert '<span class="prov read-path" title="where this panel was read from">read from <b>' in detail
    assert detail.count('<span class="prov"') == 0
    css = open(finders.find("dashboard/console.css"), encoding="utf-8").read()
    assert "body:not(.show-read-paths) .read-path { display:none; }" in css
    script = open(finders.find("dashboard/read-paths.js"), encoding="utf-8").read()
    assert "localStorage" in script and "show-read-paths" in script
