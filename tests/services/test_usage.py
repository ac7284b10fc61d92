"""Per-session usage: the record the append transaction keeps on META (sessions_app/usage.py,
services/usage.py), its aggregates and cost, the per-model metrics and the overview's by-model
readings. Real DynamoDB Local; no mocks."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest

from sessions_app import keys, services
from sessions_app.clock import utcnow
from sessions_app.models import MetricSample, SessionMeta
from sessions_app.observability import metrics
from sessions_app.selectors.metrics import current_reading
from sessions_app.selectors.overview import model_usage_panel
from sessions_app.selectors.usage import session_aggregates
from sessions_app.usage import (
    LATENCY_BOUNDS_MS,
    MAX_MODELS,
    OTHER_MODEL,
    aggregates_from_usage,
    meta_aggregates,
    model_label,
    prices_parse,
    quantile_ms,
    turn_usage_record,
    usage_add,
    usage_parse,
)
from tests.builders import make_session

T0 = utcnow().replace(microsecond=0)


def _add(usage, seq, *, role="assistant", model="claude-3-haiku", latency_ms=None, tokens_in=None, tokens_out=None,
         at=None):
    return usage_add(usage, seq=seq, role=role, model=model, latency_ms=latency_ms, tokens_in=tokens_in,
                     tokens_out=tokens_out, at=at or T0 + timedelta(seconds=seq))


# --- pure computation -------------------------------------------------------------------------------

def test_aggregates_add_up_tokens_latency_and_cost_with_decimals(settings):
    settings.MODEL_PRICES = prices_parse({"claude-3-haiku": {"input": "0.25", "output": "1.25"}})
    u = _add(None, 1, role="user", model=None)
    u = _add(u, 2, latency_ms=400, tokens_in=1000, tokens_out=200)
    u = _add(u, 3, role="user", model=None)
    u = _add(u, 4, latency_ms=800, tokens_in=3000, tokens_out=600)
    agg = aggregates_from_usage(u, turn_count=4, last_message_at=T0 + timedelta(seconds=64))
    assert agg.state == "recorded" and agg.complete and agg.from_seq == 1
    assert (agg.tokens_in, agg.tokens_out, agg.latency_count) == (4000, 800, 2)
    assert agg.latency_mean_ms == 600
    assert agg.duration_seconds == 63  # first message (turn 1 at T0+1 s) to the last (T0+64 s)
    # (4000 × 0.25 + 800 × 1.25) / 1M, exactly
    assert agg.cost == Decimal("0.002") and isinstance(agg.cost, Decimal)
    assert [m.model for m in agg.models] == ["claude-3-haiku"] and agg.models[0].turns == 2
    assert agg.cost_text == "$0.002000"  # six places under a cent


def test_a_model_without_a_price_has_no_cost_not_zero(settings):
    settings.MODEL_PRICES = prices_parse({"claude-3-haiku": {"input": "0.25", "output": "1.25"}})
    only_unpriced = _add(None, 1, model="house-llm", tokens_in=10, tokens_out=5)
    agg = aggregates_from_usage(only_unpriced, turn_count=1, last_message_at=T0)
    assert agg.cost is None and agg.unpriced == ["house-llm"] and agg.cost_text == "no price"
    assert agg.models[0].cost is None and agg.models[0].price is None
    mixed = _add(only_unpriced, 2, tokens_in=1_000_000, tokens_out=0)
    agg = aggregates_from_usage(mixed, turn_count=2, last_message_at=T0)
    assert agg.cost == Decimal("0.25") and agg.cost_text == "$0.2500 + no price for house-llm"


def test_p95_is_interpolated_inside_the_fixed_buckets():
    counts = [0] * (len(LATENCY_BOUNDS_MS) + 1)
    counts[1] = 100  # 100 observations in (250, 500] ms
    value, above = quantile_ms(counts, 0.95)
    assert not above and value == pytest.approx(250 + 250 * 0.95)
    counts[-1] = 100  # and 100 above the last bound: p95 lies there, reported as "above"
    assert quantile_ms(counts, 0.95) == (float(LATENCY_BOUNDS_MS[-1]), True)
    assert quantile_ms([0] * len(counts), 0.95) == (None, False)


def test_only_bot_turns_count_for_latency_and_models_are_bounded():
    u = _add(None, 1, role="user", model=None, latency_ms=99_000)  # a customer's turn: no bot latency
    assert usage_parse(json.dumps(u)) is not None and sum(u["h"]) == 0 and u["m"] == {}
    for n in range(MAX_MODELS + 3):
        u = _add(u, n + 2, model=f"model-{n}", tokens_in=1, latency_ms=100)
    assert len(u["m"]) == MAX_MODELS + 1 and u["m"][OTHER_MODEL][0] == 3
    assert sum(u["h"]) == MAX_MODELS + 3


def test_prices_are_validated():
    assert prices_parse('{"m": {"input": 1, "output": "2.5"}}') == {"m": {"input": "1", "output": "2.5"}}
    for bad in ('[]', '{"m": {"input": 1}}', '{"m": {"input": -1, "output": 1}}', '{"m": {"input": "x", "output": 1}}',
                '{"other": {"input": 1, "output": 1}}', 'not json'):
        with pytest.raises(ValueError):
            prices_parse(bad)


# --- the append transaction keeps the record -------------------------------------------------------

def _meta(session_id):
    return SessionMeta.get(keys.session_pk(session_id), keys.META_SK, consistent_read=True)


def test_turn_write_records_usage_on_meta(ddb, settings):
    settings.MODEL_PRICES = prices_parse({"claude-3-haiku": {"input": "0.25", "output": "1.25"}})
    meta = make_session()
    sid = meta.session_id
    services.turn_write(session_id=sid, role="user", text="hi", client_msg_id="a")
    services.turn_write(session_id=sid, role="assistant", text="hello", client_msg_id="b", model="claude-3-haiku",
                        latency_ms=640.5, tokens_in=210, tokens_out=48)
    services.turn_write(session_id=sid, role="assistant", text="more", client_msg_id="c", model="house-llm",
                        latency_ms=1200, tokens_in=10, tokens_out=4)
    # A replay writes nothing, so it counts nothing.
    services.turn_write(session_id=sid, role="assistant", text="hello", client_msg_id="b", model="claude-3-haiku",
                        latency_ms=640.5, tokens_in=210, tokens_out=48)
    stored = _meta(sid)
    agg = meta_aggregates(stored)
    assert agg.state == "recorded" and agg.turns == 3
    assert (agg.tokens_in, agg.tokens_out, agg.latency_count) == (220, 52, 2)
    assert agg.latency_mean_ms == pytest.approx((640.5 + 1200) / 2)
    assert agg.cost == Decimal(210 * 0.25 + 48 * 1.25) / Decimal(1_000_000) and agg.unpriced == ["house-llm"]
    assert agg.duration_seconds is not None and agg.duration_seconds >= 0
    assert len(stored.usage) < 300  # small: META is read on every append


def test_concurrent_appends_lose_no_usage(ddb):
    meta = make_session()
    sid = meta.session_id

    def append(n):
        services.turn_write(session_id=sid, role="assistant", text=f"t{n}", client_msg_id=f"c-{n}",
                            model="claude-3-haiku", latency_ms=100 + n, tokens_in=n, tokens_out=2 * n)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(append, range(1, 41)))
    agg = meta_aggregates(_meta(sid))
    assert agg.turns == 40 and agg.models[0].turns == 40 and agg.latency_count == 40
    assert (agg.tokens_in, agg.tokens_out) == (sum(range(1, 41)), 2 * sum(range(1, 41)))
    assert agg.latency_mean_ms == pytest.approx(sum(100 + n for n in range(1, 41)) / 40)


def test_a_session_without_a_record_is_unknown_then_partial_and_computed_from_its_turns(ddb):
    meta = make_session(turns=4)
    sid = meta.session_id
    services.turn_write(session_id=sid, role="assistant", text="x", client_msg_id="x", model="claude-3-haiku",
                        latency_ms=300, tokens_in=7, tokens_out=3)
    SessionMeta(keys.session_pk(sid), keys.META_SK).update(actions=[SessionMeta.usage.remove()])  # as before the record
    older = _meta(sid)
    assert meta_aggregates(older).state == "unknown" and not meta_aggregates(older).known
    computed = session_aggregates(meta=older)  # the detail page: computed from the 5 turns
    assert computed.state == "computed" and (computed.tokens_in, computed.tokens_out, computed.latency_count) == (7, 3, 1)
    services.turn_write(session_id=sid, role="assistant", text="y", client_msg_id="y", model="claude-3-haiku",
                        latency_ms=500, tokens_in=1, tokens_out=1)
    partial = meta_aggregates(_meta(sid))
    assert partial.state == "partial" and partial.from_seq == 6 and not partial.complete
    assert (partial.tokens_in, partial.latency_count) == (1, 1)
    assert session_aggregates(meta=_meta(sid)).state == "computed"
    assert session_aggregates(meta=_meta(sid)).tokens_in == 8


# --- metrics and the overview's by-model readings -----------------------------------------------------

def test_model_label_is_bounded_by_the_price_table(settings):
    settings.MODEL_PRICES = prices_parse({"claude-3-haiku": {"input": "0.25", "output": "1.25"}})
    assert model_label("claude-3-haiku") == "claude-3-haiku"
    assert model_label("anything-the-bot-sends") == "other" and model_label(None) == "other"


def test_overview_reads_tokens_latency_and_cost_by_model_over_the_window(db, settings):
    settings.MODEL_PRICES = prices_parse({"claude-3-haiku": {"input": "0.25", "output": "1.25"},
                                          "claude-3-5-sonnet": {"input": "3", "output": "15"}})
    # The alert sweep's stored reading 16 minutes ago: the window starts there.
    reading = current_reading()
    reading.at -= 16 * 60
    MetricSample.objects.create(taken_at=utcnow() - timedelta(minutes=16), data={"reading": reading.to_json()})
    before = metrics.sample_value("mangaassist_model_tokens_total", model="other", direction="in")
    for latency in (300, 400, 500, 600):
        turn_usage_record(role="assistant", model="claude-3-haiku", latency_ms=latency, tokens_in=1000, tokens_out=100)
    turn_usage_record(role="assistant", model="claude-3-5-sonnet", latency_ms=3000, tokens_in=2000, tokens_out=500)
    turn_usage_record(role="assistant", model="secret-model-x", latency_ms=100, tokens_in=50, tokens_out=0)
    turn_usage_record(role="user", model=None, latency_ms=None, tokens_in=None, tokens_out=None)
    assert metrics.sample_value("mangaassist_model_tokens_total", model="other", direction="in") - before == 50
    panel = model_usage_panel(window_seconds=15 * 60)
    assert panel.window_minutes == 16
    rows = {r.model: r for r in panel.rows}
    assert set(rows) == {"claude-3-haiku", "claude-3-5-sonnet", "other"}  # never the bot's own name
    haiku = rows["claude-3-haiku"]
    assert (haiku.tokens_in, haiku.tokens_out, haiku.bot_turns) == (4000, 400, 4)
    assert 200 <= haiku.latency_p95_ms <= 1000  # within the histogram's (0.5, 1] s bucket or below
    assert haiku.cost == Decimal("0.0015")  # (4000 × 0.25 + 400 × 1.25) / 1M
    assert rows["claude-3-5-sonnet"].cost == Decimal("0.0135") and rows["other"].cost is None
    assert panel.total_cost == Decimal("0.0150") and panel.unpriced_tokens == 50
    assert [r.model for r in panel.rows] == ["claude-3-haiku", "claude-3-5-sonnet", "other"]  # most tokens first
