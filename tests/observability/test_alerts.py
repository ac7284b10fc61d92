"""The alert sweep (services.alerts) end to end: real DynamoDB Local, Redis and the local DAX node,
the real Prometheus metrics of this process, and a real HTTP receiver (http.server in a thread)
that records every POST as received. Time is the ``now`` each evaluation is given, never a sleep:
a window is the difference between samples stored at those moments."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.cache import caches

from devtools import procs
from sessions_app.clock import utcnow
from sessions_app.exceptions import SessionNotFound
from sessions_app.models import AlertEvent, AlertState, MetricSample
from sessions_app.observability import metrics
from sessions_app.realtime import context_cache_get, context_cache_put
from sessions_app.selectors.alerts import alerts_panel, sample_before
from sessions_app.selectors.metrics import current_reading
from sessions_app.selectors.sessions import session_view
from sessions_app.services.alerts import RULE_NAMES, evaluate
from sessions_app.tasks import alerts_evaluate
from tests.fixtures.http_receiver import Received, receiving

SECRET = "whsec-alerts-" + "y" * 24
MIN = timedelta(minutes=1)
DAX_ITEM = "dax_item_hit_ratio_low"


@pytest.fixture
def receiver():
    with receiving("/hooks/alerts") as r:
        yield r


@pytest.fixture
def alerting(console, settings, receiver):
    """Real table, flushed Redis, database; alerts posted to the receiver; no DAX source."""
    settings.ALERT_WEBHOOK_URL = receiver.url
    settings.ALERT_WEBHOOK_SECRET = SECRET
    settings.CONSOLE_URL = "https://console.example.com"
    settings.DAX_STATS_URL = None
    settings.DAX_CLUSTER_NAME = None
    return receiver


@pytest.fixture
def through_dax(alerting, dax_node, settings):
    """The app's reads go through the session's local DAX node, whose stats feed the DAX rules."""
    from sessions_app import dynamo

    settings.DAX_ENDPOINTS = [dax_node["endpoint"]]
    settings.DAX_STATS_URL = dax_node["stats_url"]
    settings.DAX_REQUEST_TIMEOUT = 5.0  # a starved box must not fall back to DynamoDB here
    dynamo.reset_connections()
    yield dax_node
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()


def cold_reads(n: int) -> None:
    """GetItems of keys nobody ever read: each one a miss of DAX's item cache."""
    for _ in range(n):
        with pytest.raises(SessionNotFound):
            session_view(session_id=f"cold-{uuid.uuid4().hex}")


def warm_reads(n: int) -> None:
    """One key read ``n`` times: a miss, then hits (DAX caches "no such item" too)."""
    session_id = f"warm-{uuid.uuid4().hex}"
    for _ in range(n):
        with pytest.raises(SessionNotFound):
            session_view(session_id=session_id)


def assert_signed(request: Received) -> None:
    """The receiver's check, done independently: HMAC-SHA256 over b"<timestamp>." + raw body."""
    timestamp = request.headers["X-MangaAssist-Timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request.headers["X-MangaAssist-Signature"], f"v1={expected}")
    assert request.headers["Content-Type"] == "application/json"


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def deliveries(outcome: str) -> float:
    return current_reading().value(f"webhooks:alerts:{outcome}")


def state_of(rule: str) -> AlertState:
    return AlertState.objects.get(rule=rule)


@contextmanager
def redis_down():
    """The default cache pointed at a closed port for the block (connections are refused)."""
    location = django_settings.CACHES["default"]["LOCATION"]
    django_settings.CACHES["default"]["LOCATION"] = f"redis://127.0.0.1:{procs.free_port()}/0"
    del caches["default"]
    try:
        yield
    finally:
        django_settings.CACHES["default"]["LOCATION"] = location
        del caches["default"]


# --- the DAX hit ratio, through the local node -----------------------------------------------------

def test_a_low_dax_hit_ratio_fires_once_and_resolves_once_both_signed(through_dax, alerting):
    receiver = alerting
    t0 = utcnow()
    delivered_before = deliveries("delivered")
    assert evaluate(t0) == []  # the first sample: nothing to compare with yet
    cold_reads(120)

    fired = evaluate(t0 + 16 * MIN)
    assert [(t.rule, t.kind, t.delivered) for t in fired] == [(DAX_ITEM, "fired", True)]
    [first] = receiver.received()
    assert_signed(first)
    event = AlertEvent.objects.get(rule=DAX_ITEM)
    assert first.headers["X-MangaAssist-Idempotency-Key"] == f"alert-{event.pk}"
    body = first.json
    assert body["alert"] == {"rule": DAX_ITEM, "state": "firing", "value": 0.0, "threshold": 0.8,
                             "window_seconds": 16 * 60, "since": iso(t0 + 16 * MIN),
                             "console_url": "https://console.example.com/"}
    assert body["text"] == "[FIRING] DAX item cache hit ratio: 0.0 % (below 80.0 %) over the last 16 min, 120 requests"
    [attachment] = body["attachments"]
    assert attachment["color"] == "#d92d20" and attachment["title_link"] == "https://console.example.com/"
    assert {f["title"]: f["value"] for f in attachment["fields"]} == {
        "Rule": DAX_ITEM, "Value": "0.0 %", "Threshold": "< 80.0 %", "Window": "16 min",
        "Since": iso(t0 + 16 * MIN), "Requests": "120"}

    # Still low a few minutes on: firing, and nobody is told again.
    cold_reads(30)
    assert evaluate(t0 + 20 * MIN) == []
    assert len(receiver.received()) == 1
    state = state_of(DAX_ITEM)
    assert state.state == "firing" and state.since == t0 + 16 * MIN and state.notified_at == t0 + 16 * MIN
    assert state.value == 0.0 and "150 requests" in state.message

    # Recovered: the window since the 16-minute sample is mostly hits.
    warm_reads(400)
    resolved = evaluate(t0 + 32 * MIN)
    assert [(t.rule, t.kind, t.delivered) for t in resolved] == [(DAX_ITEM, "resolved", True)]
    first_again, second = receiver.received()
    assert first_again.body == first.body
    assert_signed(second)
    assert second.json["alert"]["state"] == "resolved"
    assert second.json["alert"]["value"] == pytest.approx(399 / 430)
    assert second.json["text"].startswith("[RESOLVED] DAX item cache hit ratio: back at 92.8 % (alert at < 80.0 %)")
    assert second.json["attachments"][0]["color"] == "#2e7d32"
    events = AlertEvent.objects.filter(rule=DAX_ITEM)
    assert [(e.kind, e.delivered) for e in events] == [("resolved", True), ("fired", True)]
    assert state_of(DAX_ITEM).state == "ok"
    assert deliveries("delivered") - delivered_before == 2

    panel = alerts_panel()
    assert panel.firing == [] and panel.webhook_configured and panel.last_evaluated_at == t0 + 32 * MIN
    assert [(row.rule, row.kind) for row in panel.events] == [(DAX_ITEM, "resolved"), (DAX_ITEM, "fired")]


def test_a_handful_of_requests_cannot_fire(through_dax, alerting, settings):
    t0 = utcnow()
    evaluate(t0)
    cold_reads(5)  # a 0 % hit ratio, on 5 lookups
    assert evaluate(t0 + 16 * MIN) == []
    state = state_of(DAX_ITEM)
    assert state.state == "ok"
    assert state.check_note == "5 item cache lookups in the last 16 min, fewer than the 100 needed to judge"
    assert alerting.received() == []
    # The minimum is a setting: at 5 the same window is enough.
    settings.ALERT_MIN_REQUESTS = 5
    assert [(t.rule, t.kind) for t in evaluate(t0 + 17 * MIN)] == [(DAX_ITEM, "fired")]


def test_a_window_shorter_than_half_its_length_cannot_fire(through_dax, alerting):
    t0 = utcnow()
    evaluate(t0)
    cold_reads(150)
    assert evaluate(t0 + 5 * MIN) == []  # the sweep has run 5 minutes only
    assert state_of(DAX_ITEM).check_note == "only 5 min of the 15 min window measured so far"
    # Half the window and more: judged on what there is.
    assert [(t.rule, t.kind) for t in evaluate(t0 + 8 * MIN)] == [(DAX_ITEM, "fired")]


def test_unreachable_dax_stats_leave_a_firing_alert_firing(through_dax, alerting, settings):
    t0 = utcnow()
    evaluate(t0)
    cold_reads(120)
    assert [t.kind for t in evaluate(t0 + 16 * MIN)] == ["fired"]
    stats_url = settings.DAX_STATS_URL
    settings.DAX_STATS_URL = f"http://127.0.0.1:{procs.free_port()}/stats"
    warm_reads(400)
    assert evaluate(t0 + 20 * MIN) == []  # unknown is not recovered
    state = state_of(DAX_ITEM)
    assert state.state == "firing" and "did not answer" in state.check_note
    assert len(alerting.received()) == 1
    # Back: the window skips the sample that has no DAX counters.
    settings.DAX_STATS_URL = stats_url
    assert [(t.rule, t.kind) for t in evaluate(t0 + 32 * MIN)] == [(DAX_ITEM, "resolved")]
    assert state_of(DAX_ITEM).check_note == ""


# --- delivery ----------------------------------------------------------------------------------------

def test_a_receiver_that_is_down_gets_the_alert_on_a_later_evaluation_once(through_dax, alerting, settings):
    receiver = alerting
    failed_before, delivered_before = deliveries("failed"), deliveries("delivered")
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{procs.free_port()}/hooks/alerts"  # nothing listens
    t0 = utcnow()
    evaluate(t0)
    cold_reads(120)
    [fired] = evaluate(t0 + 16 * MIN)
    assert fired.kind == "fired" and not fired.delivered and fired.error.startswith("connection error")
    state = state_of(DAX_ITEM)
    assert state.notified_at is None and state.notify_attempts == 1
    assert state.notify_error.startswith("connection error")

    settings.ALERT_WEBHOOK_URL = receiver.url
    receiver.answer(503)
    assert evaluate(t0 + 17 * MIN) == []  # retried: no new transition
    state = state_of(DAX_ITEM)
    assert state.notify_attempts == 2 and state.notify_error.startswith("HTTP 503") and state.notified_at is None

    assert evaluate(t0 + 18 * MIN) == []
    state = state_of(DAX_ITEM)
    assert state.notified_at == t0 + 18 * MIN and state.notify_error == "" and state.notify_attempts == 3
    refused, accepted = receiver.received()
    assert refused.body == accepted.body  # the same alert, signed afresh
    assert_signed(accepted)
    assert accepted.json["alert"]["since"] == iso(t0 + 16 * MIN)
    [event] = AlertEvent.objects.filter(rule=DAX_ITEM)
    assert event.delivered and event.delivered_at == t0 + 18 * MIN and event.delivery_error == ""
    assert deliveries("failed") - failed_before == 2 and deliveries("delivered") - delivered_before == 1

    assert evaluate(t0 + 19 * MIN) == []
    assert len(receiver.received()) == 2


def test_a_receiver_that_refuses_for_good_is_not_asked_again(alerting):
    receiver = alerting
    receiver.answer(401)
    gave_up_before = deliveries("gave_up")
    t0 = utcnow()
    metrics.dax_breaker_state("open")
    try:
        [fired] = evaluate(t0)
        assert fired.rule == "dax_breaker_open" and not fired.delivered and fired.error.startswith("HTTP 401")
        assert evaluate(t0 + MIN) == []
        assert len(receiver.received()) == 1
        event = AlertEvent.objects.get(rule="dax_breaker_open")
        assert event.abandoned and not event.delivered and event.delivery_error.startswith("HTTP 401")
        assert deliveries("gave_up") - gave_up_before == 1
    finally:
        metrics.dax_breaker_state("closed")
    # The next transition is news of its own: sent (the receiver accepts again).
    [resolved] = evaluate(t0 + 2 * MIN)
    assert resolved.kind == "resolved" and resolved.delivered


def test_without_a_secret_nothing_is_sent_and_the_alert_goes_out_once_configured(alerting, settings):
    receiver = alerting
    settings.ALERT_WEBHOOK_SECRET = ""
    t0 = utcnow()
    metrics.dax_breaker_state("open")
    try:
        [fired] = evaluate(t0)
        assert not fired.delivered and fired.error == "ALERT_WEBHOOK_SECRET is not set: alerts are never sent unsigned"
        panel = alerts_panel()
        assert not panel.webhook_configured and "ALERT_WEBHOOK_SECRET" in panel.webhook_missing
        [firing] = panel.firing
        assert firing.rule == "dax_breaker_open" and firing.since == t0 and not firing.notified
        assert firing.message == "DAX circuit breaker open: 1 (above 0)"
        assert receiver.received() == []
        settings.ALERT_WEBHOOK_SECRET = SECRET
        assert evaluate(t0 + MIN) == []
        [request] = receiver.received()
        assert_signed(request)
        assert request.json["alert"]["state"] == "firing" and request.json["alert"]["window_seconds"] == 0
        assert AlertEvent.objects.filter(rule="dax_breaker_open").count() == 1
        assert alerts_panel().firing[0].notified
    finally:
        metrics.dax_breaker_state("closed")


# --- the other rules, over stored samples and the real counters ---------------------------------------

def _http_requests(n: int, status: str) -> None:
    for _ in range(n):
        metrics.observe_seconds(metrics.HTTP_REQUEST_SECONDS, 0.01, "tests/alerts", "GET", status)


def test_the_error_rate_needs_its_minimum_then_fires_and_resolves(alerting):
    t0 = utcnow()
    evaluate(t0)
    _http_requests(20, "500")  # 100 % errors, on 20 requests
    assert evaluate(t0 + 6 * MIN) == []
    assert state_of("http_error_rate_high").check_note == (
        "20 requests in the last 6 min, fewer than the 50 needed to judge")
    _http_requests(50, "200")
    _http_requests(10, "503")
    [fired] = evaluate(t0 + 12 * MIN)  # the window since the 6-minute sample: 10 of 60
    assert (fired.rule, fired.kind) == ("http_error_rate_high", "fired")
    assert fired.value == pytest.approx(10 / 60)
    _http_requests(400, "200")
    [resolved] = evaluate(t0 + 18 * MIN)
    assert (resolved.rule, resolved.kind, resolved.value) == ("http_error_rate_high", "resolved", 0.0)
    assert [r.json["alert"]["state"] for r in alerting.received()] == ["firing", "resolved"]


def test_the_context_hit_ratio_reads_the_redis_counters(alerting):
    now = utcnow()
    for i in range(5):
        context_cache_get(session_id=f"s-{i}", variant="t20")  # misses
    assert evaluate(now) == []
    assert state_of("context_hit_ratio_low").check_note == (
        "5 context loads in the last 15 min, fewer than the 100 needed to judge")
    for i in range(115):
        context_cache_get(session_id=f"s-{i}", variant="t20")
    [fired] = evaluate(now + MIN)
    assert (fired.rule, fired.kind, fired.value) == ("context_hit_ratio_low", "fired", 0.0)

    with redis_down():
        transitions = evaluate(now + 2 * MIN)
    assert "context_hit_ratio_low" not in [t.rule for t in transitions]
    state = state_of("context_hit_ratio_low")
    assert state.state == "firing" and state.check_note.startswith("Redis is unavailable")

    assert context_cache_put(session_id="warm", variant="t20", seq=1, payload=b"ctx")
    for _ in range(600):
        assert context_cache_get(session_id="warm", variant="t20").payload == b"ctx"
    [resolved] = [t for t in evaluate(now + 3 * MIN) if t.rule == "context_hit_ratio_low"]
    assert resolved.kind == "resolved" and resolved.value == pytest.approx(600 / 720)


def test_the_breaker_is_a_level_read_now(alerting):
    t0 = utcnow()
    metrics.dax_breaker_state("open")
    try:
        assert [(t.rule, t.kind) for t in evaluate(t0)] == [("dax_breaker_open", "fired")]
        assert evaluate(t0 + MIN) == []
    finally:
        metrics.dax_breaker_state("closed")
    assert [(t.rule, t.kind) for t in evaluate(t0 + 2 * MIN)] == [("dax_breaker_open", "resolved")]


# --- samples, the overview's reads, the task ----------------------------------------------------------

def test_samples_are_kept_two_hours_and_give_the_overview_its_window(alerting):
    t0 = utcnow()
    evaluate(t0)
    evaluate(t0 + 16 * MIN)
    sample = MetricSample.objects.get(taken_at=t0)
    assert sample.data["dax"] is None and "values" in sample.data["reading"]
    before = sample_before(15 * 60, now=t0 + 16 * MIN)
    assert before is not None and before.at == t0.timestamp()
    assert sample_before(15 * 60, now=t0 + 10 * MIN) is None
    evaluate(t0 + 3 * 60 * MIN)
    assert list(MetricSample.objects.values_list("taken_at", flat=True)) == [t0 + 3 * 60 * MIN]


def test_an_evaluation_run_twice_at_once_changes_nothing_more(alerting):
    t0 = utcnow()
    metrics.dax_breaker_state("open")
    try:
        assert len(evaluate(t0)) == 1
        assert evaluate(t0) == []
    finally:
        metrics.dax_breaker_state("closed")
    assert len(alerting.received()) == 1
    assert set(AlertState.objects.values_list("rule", flat=True)) == set(RULE_NAMES)


def test_rules_that_cannot_judge_say_why_on_the_overview(alerting):
    evaluate(utcnow())
    notes = {row.rule: row.note for row in alerts_panel().unchecked}
    assert notes[DAX_ITEM] == "DAX hit ratios have no source: DAX_STATS_URL and DAX_CLUSTER_NAME are unset"
    assert notes["http_error_rate_high"] == "no earlier metrics sample to compare with yet"
    assert "dax_breaker_open" not in notes and "summary_backlog_high" not in notes


def test_the_beat_task_evaluates_now(alerting):
    assert django_settings.CELERY_BEAT_SCHEDULE["alerts-evaluate"] == {
        "task": "sessions_app.alerts_evaluate", "schedule": 60.0, "options": {"expires": 60.0}}
    metrics.dax_breaker_state("open")
    try:
        result = alerts_evaluate.apply().get()
    finally:
        metrics.dax_breaker_state("closed")
    assert result == {"fired": ["dax_breaker_open"], "resolved": [], "undelivered": []}
    assert MetricSample.objects.count() == 1


def test_bot_webhook_deliveries_are_counted_by_outcome(console, receiver, settings):
    """The bot webhook (services.webhooks) counts its attempts on the same metric, "bot" label."""
    from sessions_app.services import webhooks
    from tests.tasks.test_webhook_delivery import SECRET as BOT_SECRET
    from tests.tasks.test_webhook_delivery import reply

    settings.BOT_WEBHOOK_URL, settings.BOT_WEBHOOK_SECRET = receiver.url, BOT_SECRET
    settings.BOT_WEBHOOK_MAX_ATTEMPTS = 2

    def counted() -> dict[str, float]:
        reading = current_reading()
        return {o: reading.value(f"webhooks:bot:{o}") for o in ("delivered", "failed", "gave_up")}

    before = counted()
    session_id, seq = reply()
    receiver.answer(503, 503)
    assert webhooks.webhook_deliver(session_id=session_id, seq=seq).status == "retry"
    assert webhooks.webhook_deliver(session_id=session_id, seq=seq).status == "failed"  # attempts exhausted
    session_id, seq = reply()
    assert webhooks.webhook_deliver(session_id=session_id, seq=seq).status == "delivered"
    after = counted()
    assert {o: after[o] - before[o] for o in after} == {"delivered": 1, "failed": 1, "gave_up": 1}
