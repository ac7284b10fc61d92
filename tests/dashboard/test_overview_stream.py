"""The overview's change feed: the panel (lag, throughput, consumers, the last error, origins, the
lag alert), the fleet-wide counts and the activity feed, from what the stream consumers write to a
real Redis and the real lease table — and what the page says when there is no stream or no Redis."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from django.urls import reverse

from sessions_app.realtime import FleetCount, change_events_publish, fleet_count, stream_error_record, stream_progress_record
from sessions_app.streams.consumer import stream_arn_of
from sessions_app.streams.leases import LeaseTable
from tests.fixtures.staff import staff_user
from tests.realtime.conftest import own_redis  # noqa: F401  (the fixture: a Redis this test may kill)

# 2025-01-31 12:00:03.123 UTC
AT_MS = 1738324803123


def _overview(client) -> str:
    response = client.get(reverse("dashboard:overview"))
    assert response.status_code == 200
    return response.content.decode()


def _activity(client) -> str:
    response = client.get(reverse("dashboard:overview_activity"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def _metric(body: str, name: str) -> str:
    match = re.search(rf'<(\w+)[^>]*\sdata-metric="{re.escape(name)}">(.*?)</\1>', body, re.S)
    assert match, f"no {name} in the page"
    return match.group(2)


def _panel(body: str) -> str:
    match = re.search(r'<section class="card stream-panel[^"]*" id="change-feed".*?</section>', body, re.S)
    assert match, "no change feed panel"
    return match.group(0)


def _sid() -> str:
    return f"s-{uuid.uuid4().hex[:12]}"


# --- the change feed panel -------------------------------------------------------------------------

def test_the_panel_shows_lag_throughput_origins_consumers_and_the_last_error(console, viewer_client):
    stream_progress_record(lags_ms=[1000, 2000, 3000], origins=["app", "app", "ttl"])
    stream_error_record(consumer="worker-b", shard="shardId-0001", message="GetRecords failed: <b>throttled</b>",
                        now=AT_MS / 1000)
    arn = stream_arn_of()
    leases = LeaseTable(stream_arn=arn)
    leases.add(shard_id="shardId-0001", parent_id=None)
    leases.add(shard_id="shardId-0002", parent_id=None)
    free = {lease.shard_id: lease for lease in leases.list()}
    assert leases.take(free["shardId-0001"], owner="worker-a", seconds=60) is not None

    body = _overview(viewer_client)
    panel = _panel(body)
    assert 'data-alert="off"' in panel and "alert-band" not in panel and "alert threshold" not in panel
    # Samples 1, 2, 3 s: p50 is the middle one; max is exact.
    assert _metric(panel, "stream-lag") == "p50 2.00 s · p95 3.00 s · max 3.00 s"
    assert _metric(panel, "stream-rps").startswith("0.05 ")  # 3 records in the 60 s window
    assert "(3 records in 60 s)" in panel
    assert _metric(panel, "stream-consumers") == "1: worker-a"
    assert _metric(panel, "stream-leases").startswith("1 of 2 ")
    error = _metric(panel, "stream-error")
    assert error == ("2025-01-31 12:00:03 UTC · consumer worker-b · shard shardId-0001: "
                     "GetRecords failed: &lt;b&gt;throttled&lt;/b&gt;")
    origins = _metric(panel, "stream-origins")
    assert re.findall(r'<span class="meta-bit">(\w+) (\d+)</span>', origins) == [
        ("app", "2"), ("ttl", "1"), ("outside", "0"), ("delete", "0")]
    # The panel is inside the polled metrics partial, so it refreshes with the numbers.
    partial = viewer_client.get(reverse("dashboard:overview_metrics"), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in partial and _metric(_panel(partial), "stream-lag") == "p50 2.00 s · p95 3.00 s · max 3.00 s"


def test_lag_above_the_threshold_flags_the_panel_and_says_so_truthfully(console, viewer_client, settings):
    stream_progress_record(lags_ms=[400, 7500], origins=["app", "outside"])
    settings.STREAM_LAG_ALERT_SECONDS = 5
    panel = _panel(_overview(viewer_client))
    assert panel.startswith('<section class="card stream-panel alert-band" id="change-feed" data-alert="on"')
    assert _metric(panel, "stream-alert") == (
        "lag above 5 s alert threshold: the slowest record of the last 60 s waited 7.50 s")
    assert "max 7.50 s" in _metric(panel, "stream-lag")

    settings.STREAM_LAG_ALERT_SECONDS = 7.5  # the maximum equals the threshold: not above it
    panel = _panel(_overview(viewer_client))
    assert 'data-alert="off"' in panel and "alert-band" not in panel and "alert threshold" not in panel
    assert "max 7.50 s" in _metric(panel, "stream-lag")


def test_no_records_in_the_window_is_idle_not_a_lag_of_zero(console, viewer_client):
    panel = _panel(_overview(viewer_client))
    assert _metric(panel, "stream-lag") == "idle: no changes in the last 60 s"
    assert "p50" not in panel and "0.00 s" not in panel
    assert _metric(panel, "stream-error") == "none recorded"
    assert _metric(panel, "stream-consumers").startswith("0 ")  # a stream, but nobody holds a lease


def test_a_table_without_a_stream_says_so(console, viewer_client, settings):
    from sessions_app.services import table_delete, table_ensure

    name = f"test-nostream-{uuid.uuid4().hex[:8]}"
    settings.DYNAMODB_STREAM = False
    settings.DYNAMODB_TABLE = name
    table_ensure(table_name=name)
    try:
        assert stream_arn_of() is None
        body = _overview(viewer_client)
    finally:
        table_delete(table_name=name)
    panel = _panel(body)
    assert "no stream enabled on the table — run manage.py dynamodb_init" in panel
    assert 'data-stream-state="no_stream"' in panel and "idle:" not in panel and "p50" not in panel
    assert _metric(body, "fleet-caveat") == "the table has no stream, so nothing is counting these"


# --- fleet-wide counts -----------------------------------------------------------------------------

def test_fleet_counts_come_from_the_change_feed_counted_once(console, viewer_client):
    now = time.time()
    a, b, c = _sid(), _sid(), _sid()
    counts = [FleetCount(a, "turn", seq, "max", "turns", now) for seq in (1, 2, 3)]
    counts += [FleetCount(a, "started", 1, "once", "started:web", now), FleetCount(b, "started", 1, "once", "started:web", now),
               FleetCount(c, "started", 1, "once", "started:line", now), FleetCount(a, "closed", 1, "once", "closed:web", now),
               FleetCount(a, "summary", 3, "max", "summaries", now), FleetCount(b, "expired", 1, "once", "expired", now)]
    assert fleet_count(counts=counts) == 9
    # A redelivered batch counts nothing again.
    assert fleet_count(counts=counts[1:3] + counts[3:4]) == 0

    body = _overview(viewer_client)
    assert "fleet-wide, from the change feed" in body
    assert _metric(body, "fleet-turns") == "3"
    assert _metric(body, "fleet-started") == "3"
    assert _metric(body, "fleet-started-channels") == "web 2 · app 0 · line 1 · email 0 · voice 0"
    assert _metric(body, "fleet-closed") == "1"
    assert _metric(body, "fleet-closed-channels") == "web 1 · app 0 · line 0 · email 0 · voice 0"
    assert _metric(body, "fleet-summaries") == "1"
    assert _metric(body, "fleet-expired") == "1"
    # Nobody holds a lease in this test: the counts may be behind, and the page says so.
    assert _metric(body, "fleet-caveat") == "no consumer holds a lease now: the counts stop at the last change processed"
    # The rate limiter's number is labelled as what it is; "Turns / minute" is the change feed's.
    assert "Appends allowed / minute" in body
    assert "Turns / minute" in body and "turns written in the last full minute, fleet-wide (change feed)" in body
    assert _metric(body, "turns-pm") in ("0", "3")  # 3 only if the minute turned since the counts


# --- the activity feed -----------------------------------------------------------------------------

def test_the_activity_feed_lists_the_newest_events_escaped_and_linked(console, viewer_client):
    sid = _sid()
    events = [
        {"id": "100", "session_id": sid, "kind": "started", "seq": 0, "at": "2025-01-31T12:00:01.000+00:00",
         "at_ms": AT_MS - 2123, "channel": "web"},
        {"id": "101", "session_id": sid, "kind": "turn", "seq": 1, "at": "2025-01-31T12:00:02.000+00:00",
         "at_ms": AT_MS - 1123, "role": "user"},
        {"id": "102", "session_id": sid, "kind": "turn", "seq": 2, "at": "2025-01-31T12:00:03.123+00:00",
         "at_ms": AT_MS, "role": "<img src=x onerror=alert(1)>"},
    ]
    assert change_events_publish(events=events) == 3

    body = _activity(viewer_client)
    assert "<html" not in body
    rows = re.findall(r'<tr class="event" data-event-id="(\d+)">(.*?)</tr>', body, re.S)
    assert [event_id for event_id, _ in rows] == ["102", "101", "100"]  # newest first
    newest, turn, started = (row for _, row in rows)
    link = reverse("dashboard:session_detail", args=[sid])
    assert f'<a href="{link}"><code>{sid}</code></a>' in newest
    assert '<time datetime="2025-01-31T12:00:03.123+00:00">2025-01-31 12:00:03.123 UTC</time>' in newest
    assert '<span class="badge kind-turn">turn</span>' in newest and '<td class="seq">2</td>' in newest
    # Event data is escaped, never markup.
    assert '<td class="who">&lt;img src=x onerror=alert(1)&gt;</td>' in newest
    assert "<img" not in body
    assert '<td class="who">user</td>' in turn and '<td class="seq">1</td>' in turn
    assert '<span class="badge kind-started">started</span>' in started and '<td class="who">channel web</td>' in started
    assert '<td class="seq">0</td>' in started

    # The overview renders the same feed on load and polls the partial every 5 s.
    page = _overview(viewer_client)
    assert f'hx-get="{reverse("dashboard:overview_activity")}" hx-trigger="every 5s"' in page
    assert 'data-event-id="102"' in page


def test_the_activity_feed_shows_the_newest_thirty(console, viewer_client):
    sid = _sid()
    change_events_publish(events=[{"id": str(1000 + n), "session_id": sid, "kind": "turn", "seq": n,
                                   "at": "2025-01-31T12:00:00.000+00:00", "at_ms": AT_MS + n, "role": "assistant"}
                                  for n in range(1, 36)])
    ids = re.findall(r'<tr class="event" data-event-id="(\d+)">', _activity(viewer_client))
    assert ids == [str(1000 + n) for n in range(35, 5, -1)]


def test_an_empty_feed_says_so(console, viewer_client):
    body = _activity(viewer_client)
    assert 'data-activity="empty"' in body and "<tr" not in body


def test_the_activity_partial_needs_a_login_and_the_view_permission_and_is_read_only(console, client):
    url = reverse("dashboard:overview_activity")
    response = client.get(url)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next=")
    client.force_login(staff_user(username="nobody", group=None))
    assert client.get(url).status_code == 403
    client.force_login(staff_user(username="vera2", group="Viewer"))
    assert client.get(url).status_code == 200
    assert client.post(url).status_code == 405


# --- Redis down ------------------------------------------------------------------------------------

@pytest.fixture
def redis_gone(console, own_redis):  # noqa: F811 - the imported fixture
    stream_progress_record(lags_ms=[1000], origins=["app"])
    change_events_publish(events=[{"id": "1", "session_id": _sid(), "kind": "started", "seq": 0,
                                   "at": "2025-01-31T12:00:00.000+00:00", "at_ms": AT_MS}])
    own_redis.kill()
    return own_redis


def test_with_redis_down_the_numbers_are_unknown_never_zero(redis_gone, viewer_client):
    body = _overview(viewer_client)
    panel = _panel(body)
    for name in ("stream-lag", "stream-rps", "stream-error", "stream-origins"):
        assert _metric(panel, name) == "unknown (Redis unavailable)", name
    assert "idle:" not in panel and 'data-alert="off"' in panel
    assert _metric(body, "fleet-unknown") == "unknown (Redis unavailable)"
    assert 'data-metric="fleet-turns"' not in body
    assert 'data-activity="unknown"' in body
    assert 'data-activity="unknown"' in _activity(viewer_client)
