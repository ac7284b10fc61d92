"""Verify against DynamoDB (a real stale DAX cache) and the overview's metrics."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse

from devtools import procs
from devtools.dax import start_dax_node

from sessions_app import keys, services
from sessions_app.clock import utcnow
from sessions_app.realtime import context_cache_get, presence_heartbeat, rate_limit_hit
from sessions_app.selectors.sessions import session_get
from tests.builders import make_session


def test_verify_reports_a_match_when_nothing_is_cached(console, viewer_client):
    meta = make_session(turns=3)
    body = viewer_client.get(reverse("dashboard:session_verify", args=[meta.session_id])).content.decode()
    assert "Matches DynamoDB." in body and "verify-ok" in body


def test_verify_highlights_what_a_stale_dax_cache_shows(through_dax, viewer_client, settings):
    from sessions_app import dynamo

    meta = make_session(turns=2)
    session_get(session_id=meta.session_id)  # DAX's item cache now holds META (active)
    # A writer that bypasses DAX: DAX keeps serving its cached META until the TTL.
    settings.DAX_WRITE_THROUGH = False
    dynamo.reset_connections()
    services.session_close(session_id=meta.session_id)
    detail = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    # The page itself reads META strongly consistent: it shows the close DAX has not seen...
    assert "status-closed" in detail and "status-active" not in detail
    # ...and Verify shows what DAX would still hand out.
    body = viewer_client.get(reverse("dashboard:session_verify", args=[meta.session_id])).content.decode()
    assert "verify-diff" in body
    assert "<td>status</td><td>active</td><td><mark>closed</mark></td>" in body


def test_overview_shows_live_numbers(console, viewer_client, settings):
    settings.DAX_STATS_URL = None
    a = make_session(turns=12)
    b = make_session(turns=1)
    # Waiting for a summary since the sweep's threshold: counted, online or not.
    waited = make_session(turns=2, started_at=utcnow() - timedelta(minutes=settings.SUMMARY_IDLE_MINUTES + 5))
    _backdate_due_marker(waited, minutes=settings.SUMMARY_IDLE_MINUTES + 4)
    presence_heartbeat(session_id=a.session_id)
    for _ in range(3):
        rate_limit_hit(customer_id="cust-r", limit=2)
    # One miss: 0 %, but one lookup is not enough traffic to judge (the alert rule's minimum).
    context_cache_get(session_id=a.session_id, variant="t20")
    # "Sessions today" is the UTC day of the request: `waited` started 20 minutes ago, which is
    # yesterday just after midnight. Count what the request's day holds (asking again if the
    # day turned during the request).
    while True:
        day = utcnow().date()
        body = viewer_client.get(reverse("dashboard:overview")).content.decode()
        if utcnow().date() == day:
            break
    today = sum(1 for m in (a, b, waited) if m.started_at.date() == day)
    assert 'data-metric="online">1<' in body
    assert f'data-metric="today">{today}<' in body
    assert 'data-metric="denied">1<' in body
    assert 'data-metric="backlog">1<' in body
    assert 'data-metric="dax-item">n/a<' in body
    assert 'data-metric="ctx">0.0 %<' in body and 'data-alert="off"' in body
    assert f"not enough traffic to judge: 1 of the {settings.ALERT_MIN_REQUESTS} lookups" in body
    assert 'data-metric="open">3<' in body  # active, online or not
    assert 'id="overview-series"' in body and "/static/dashboard/vendor/chart-4.6.1.umd.min.js" in body
    partial = viewer_client.get(reverse("dashboard:overview_metrics"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and 'data-metric="online">1<' in partial


def _backdate_due_marker(meta, *, minutes):
    from sessions_app.models import SessionMeta

    stored = SessionMeta.get(meta.pk, meta.sk, consistent_read=True)
    stored.update(actions=[SessionMeta.summary_due_sk.set(keys.ts_str(utcnow() - timedelta(minutes=minutes)))])


def test_summary_backlog_counts_the_whole_table_and_stops_at_its_cap(console, settings):
    from sessions_app.selectors.summaries import summary_backlog_count

    settings.SUMMARY_DUE_SHARDS = 3
    for n in range(7):
        _backdate_due_marker(make_session(turns=1), minutes=30)
    make_session(turns=1)  # waiting for a moment only
    since = utcnow() - timedelta(minutes=15)
    assert summary_backlog_count(waiting_since=since) == 7
    assert summary_backlog_count(waiting_since=since, cap=5) == 5


def test_overview_reads_dax_hit_ratios_from_the_stats_endpoint(through_dax, viewer_client):
    meta = make_session(turns=1)
    session_get(session_id=meta.session_id)
    session_get(session_id=meta.session_id)
    body = viewer_client.get(reverse("dashboard:overview")).content.decode()
    assert 'data-metric="dax-item">n/a<' not in body
    assert 'data-metric="dax-item">' in body and " %<" in body


def test_overview_says_na_when_the_dax_stats_endpoint_is_unreachable(console, viewer_client, settings):
    settings.DAX_STATS_URL = "http://127.0.0.1:9/stats"
    body = viewer_client.get(reverse("dashboard:overview")).content.decode()
    assert 'data-metric="dax-item">n/a<' in body and 'data-metric="dax-query">n/a<' in body


def test_vendored_assets_are_served_from_static(console, viewer_client):
    from django.contrib.staticfiles import finders

    assert finders.find("dashboard/vendor/chart-4.6.1.umd.min.js")
    assert finders.find("dashboard/vendor/htmx-2.0.11.min.js")
    assert finders.find("dashboard/vendor/chart.js-LICENSE.md") and finders.find("dashboard/vendor/htmx.org-LICENSE")


@pytest.fixture
def dead_dax(console, infra, settings):
    """A DAX node of this test's own, stopped once the session under test is written: the
    console's reads are meant for DAX, and every one has to fall back to DynamoDB."""
    from sessions_app import dynamo

    port = procs.free_port()
    proc = start_dax_node(port, dynamodb_endpoint=infra["dynamodb_endpoint"], log=infra["logs"] / "dax-node-dead.log")
    settings.DAX_ENDPOINTS = [f"127.0.0.1:{port}"]
    settings.DAX_STATS_URL = None
    dynamo.reset_connections()

    def kill() -> None:
        procs.stop(proc)

    yield kill
    procs.stop(proc)
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()


def test_with_dax_down_the_page_says_dynamodb_fallback_never_dax(dead_dax, viewer_client):
    meta = make_session(turns=3)
    session_get(session_id=meta.session_id)  # through the node while it is up
    dead_dax()
    body = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert "read from <b>DynamoDB (DAX fallback)</b>" in body
    assert "read from <b>DAX</b>" not in body
    assert "read from <b>Redis</b>" in body  # presence and the rate window
    report = viewer_client.get(reverse("dashboard:session_verify", args=[meta.session_id])).content.decode()
    assert "page read from DynamoDB (DAX fallback)" in report and "re-read from DynamoDB (ConsistentRead)" in report
    overview = viewer_client.get(reverse("dashboard:overview")).content.decode()
    fallback_calls = re.search(r"<td>DynamoDB \(DAX fallback\)</td><td>(\d+)</td>", overview)
    assert fallback_calls and int(fallback_calls.group(1)) >= 3


def test_the_latency_table_has_one_row_per_route(console, viewer_client):
    meta = make_session(turns=1)
    viewer_client.get(reverse("dashboard:session_summary_panel", args=[meta.session_id]))  # ConsistentRead
    body = viewer_client.get(reverse("dashboard:overview")).content.decode()
    rows = re.findall(r"<tr><td>([^<]+)</td><td>(\d+)</td>", body)
    assert [label for label, _ in rows] == ["Redis", "DAX", "DynamoDB", "DynamoDB (ConsistentRead)", "DynamoDB (DAX fallback)"]
    assert int(dict(rows)["DynamoDB (ConsistentRead)"]) >= 1


def test_the_summary_panel_says_what_it_read(through_dax, viewer_client):
    meta = make_session(turns=2)
    panel = viewer_client.get(reverse("dashboard:session_summary_panel", args=[meta.session_id])).content.decode()
    # The panel reads strongly consistent (DynamoDB, never DAX); with no summary yet it reads META only.
    assert "read from <b>DynamoDB (ConsistentRead)</b>" in panel
    detail = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert "nothing stored to read" in detail  # the summary panel: no summary, so no read at all


def test_the_infrastructure_page_shows_every_dax_node_of_the_cluster(console, supervisor_client, settings, infra):
    """A 3-node local cluster: one row per node with its role, AZ and counters, read from each
    node's own stats endpoint — on the infrastructure page (the overview leads with support work
    and has no DAX nodes panel)."""
    from devtools.dax import start_dax_cluster
    from sessions_app import dynamo
    from sessions_app.selectors.infrastructure import infrastructure_cache_clear

    cluster = start_dax_cluster(0, size=3, dynamodb_endpoint=infra["dynamodb_endpoint"], stats_port=0,
                                log=infra["logs"] / "dax-cluster-overview.log")
    try:
        leader = cluster.wait_for_leader()
        settings.DAX_ENDPOINTS = cluster.endpoints
        settings.DAX_STATS_URL = cluster.nodes[0].stats_url
        dynamo.reset_connections()
        infrastructure_cache_clear()
        assert 'id="dax-cluster"' not in supervisor_client.get(reverse("dashboard:overview")).content.decode()
        body = supervisor_client.get(reverse("dashboard:infrastructure")).content.decode()
        assert body.count('<tr data-node="') == 3
        assert body.count('data-role="leader"') == 1 and body.count('data-role="replica"') == 2
        assert f'<tr data-node="{leader.node_id}" data-role="leader"' in body
        for az in ("local-1a", "local-1b", "local-1c"):
            assert f"<td>{az}</td>" in body
        assert 'data-metric="dax-no-leader"' not in body
        cluster.kill(leader)
        # The node asked first may be the dead one: then the panel says n/a rather than guessing.
        infrastructure_cache_clear()
        body = supervisor_client.get(reverse("dashboard:infrastructure")).content.decode()
        assert 'id="dax-cluster"' in body
    finally:
        settings.DAX_ENDPOINTS = []
        dynamo.reset_connections()
        infrastructure_cache_clear()
        cluster.stop()
