"""Usage aggregates in the console: the detail page's panel, the list's columns (from META only,
no turn read per row) and the overview's by-model panel."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.template.loader import render_to_string

from sessions_app import keys, services
from sessions_app.clock import utcnow
from sessions_app.models import MetricSample, SessionMeta, Turn
from sessions_app.selectors.metrics import current_reading
from sessions_app.usage import prices_parse, turn_usage_record
from tests.builders import at, make_session

PRICES = {"claude-3-haiku": {"input": "0.25", "output": "1.25"}}


def _traced_session(**kwargs):
    meta = make_session(**kwargs)
    sid = meta.session_id
    services.turn_write(session_id=sid, role="user", text="Is One Piece 108 in stock?", client_msg_id="u1")
    services.turn_write(session_id=sid, role="assistant", text="Yes.", client_msg_id="a1", model="claude-3-haiku",
                        latency_ms=640, tokens_in=210, tokens_out=48)
    services.turn_write(session_id=sid, role="user", text="Add it", client_msg_id="u2")
    services.turn_write(session_id=sid, role="assistant", text="Done.", client_msg_id="a2", model="house-llm",
                        latency_ms=1800, tokens_in=300, tokens_out=20)
    return meta


def test_detail_page_has_the_sessions_aggregates(console, viewer_client, settings):
    settings.MODEL_PRICES = prices_parse(PRICES)
    meta = _traced_session(started_at=at("2026-11-20"))
    response = viewer_client.get(f"/sessions/{meta.session_id}/")
    agg = response.context["agg"]
    assert agg.state == "recorded" and agg.turns == 4
    assert (agg.tokens_in, agg.tokens_out, agg.latency_count) == (510, 68, 2)
    assert agg.latency_mean_ms == 1220
    assert agg.cost == (Decimal(210) * Decimal("0.25") + Decimal(48) * Decimal("1.25")) / Decimal(1_000_000)
    html = render_to_string("dashboard/partials/session_aggregates.html", {"agg": agg})
    assert 'data-state="recorded"' in html and "recorded with each turn" in html
    assert "510 in · 68 out" in html and "mean 1220 ms" in html and "p95 ≈" in html
    assert "$0.000113 + no price for house-llm" in html
    assert '<tr data-model="house-llm">' in html and "no price</td>" in html
    body = response.content.decode()
    # The timeline's per-turn trace: model, latency and tokens on the bot's turn.
    assert "claude-3-haiku" in body and "640 ms" in body and "210→48 tokens" in body
    if 'id="aggregates-panel"' in body:  # once the detail page includes the partial
        assert "510 in · 68 out" in body


def test_an_older_session_is_computed_from_its_turns_and_says_so(console, viewer_client):
    meta = _traced_session(started_at=at("2026-11-20"))
    SessionMeta(keys.session_pk(meta.session_id), keys.META_SK).update(actions=[SessionMeta.usage.remove()])
    agg = viewer_client.get(f"/sessions/{meta.session_id}/").context["agg"]
    assert agg.state == "computed" and (agg.tokens_in, agg.latency_count) == (510, 2)
    html = render_to_string("dashboard/partials/session_aggregates.html", {"agg": agg})
    assert "computed from the 4 turns (not recorded for this session)" in html
    # The list reads META only: unknown, never zeros.
    listed = viewer_client.get("/sessions/", {"day_from": "2026-11-20", "day_to": "2026-11-20"}).content.decode()
    assert "not recorded for this session" in listed and ">unknown</td>" in listed


def test_partial_and_unknown_labels_are_truthful():
    from sessions_app.usage import SessionAggregates

    html = render_to_string("dashboard/partials/session_aggregates.html",
                            {"agg": SessionAggregates(state="unknown", turns=900)})
    assert "unknown: not recorded for this session" in html and 'id="aggregates"' not in html
    html = render_to_string("dashboard/partials/session_aggregates.html",
                            {"agg": SessionAggregates(state="partial", turns=900, from_seq=601, tokens_in=5)})
    assert "recorded from turn #601 on only: turns 1–600 are not counted" in html


def test_list_columns_show_turns_tokens_p95_and_cost_from_meta(console, viewer_client, settings):
    settings.MODEL_PRICES = prices_parse({**PRICES, "house-llm": {"input": "1", "output": "2"}})
    meta = _traced_session(started_at=at("2026-11-20"))
    body = viewer_client.get("/sessions/", {"day_from": "2026-11-20", "day_to": "2026-11-20"}).content.decode()
    assert "<th title=\"tokens in + out (recorded with each turn)\">Tokens</th>" in body and ">p95</th>" in body
    row = body[body.index(f'data-session-id="{meta.session_id}"'):]
    row = row[:row.index("</tr>")]
    assert re.search(r'<td data-col="tokens"[^>]* title="510 in · 68 out">578</td>', row)
    # p95 of 640 and 1800 ms: interpolated inside the (1500, 2000] ms bucket
    p95 = re.search(r'<td data-col="p95"[^>]*>(\d+) ms</td>', row)
    assert p95 and 1500 <= int(p95.group(1)) <= 2000
    cost = (Decimal(210) * Decimal("0.25") + Decimal(48) * Decimal("1.25") + Decimal(300) + Decimal(40)) / Decimal(1_000_000)
    assert re.search(rf'<td data-col="cost"[^>]*>\${cost.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP)}</td>', row)


def test_list_columns_come_from_meta_not_the_turns(console, viewer_client):
    """No read of a session's turns per row: with its turns gone, the row still shows them."""
    meta = _traced_session(started_at=at("2026-11-20"))
    pk = keys.session_pk(meta.session_id)
    for seq in range(1, 5):
        Turn(pk, keys.turn_sk(seq)).delete()
    body = viewer_client.get("/sessions/", {"day_from": "2026-11-20", "day_to": "2026-11-20"}).content.decode()
    assert re.search(r'<td data-col="tokens"[^>]* title="510 in · 68 out">578</td>', body)


def test_overview_shows_tokens_latency_and_cost_by_model(console, viewer_client, settings):
    settings.MODEL_PRICES = prices_parse(PRICES)
    reading = current_reading()
    reading.at -= 16 * 60
    MetricSample.objects.create(taken_at=utcnow() - timedelta(minutes=16), data={"reading": reading.to_json()})
    for _ in range(3):
        turn_usage_record(role="assistant", model="claude-3-haiku", latency_ms=700, tokens_in=1000, tokens_out=200)
    turn_usage_record(role="assistant", model="unlisted-model", latency_ms=50, tokens_in=40, tokens_out=2)
    body = viewer_client.get("/").content.decode()
    panel = body[body.index('id="model-usage-panel"'):]
    assert "last 16 min" in panel
    assert '<tr data-model="claude-3-haiku">' in panel and '<tr data-model="other">' in panel
    assert "unlisted-model" not in panel  # bounded: unpriced models are "other"
    assert '<td data-col="tokens">3,600 <span class="note">(3,000 · 600)</span></td>' in panel
    assert '<td data-col="cost">$0.001500</td>' in panel and "no price</td>" in panel
    assert "+ 42 tokens without a price" in panel
    assert "<meter" in panel and "style=" not in panel


def test_a_model_name_with_control_characters_is_shown_marked_never_raw(console, viewer_client):
    meta = make_session(started_at=at("2026-11-20"))
    services.turn_write(session_id=meta.session_id, role="assistant", text="x", client_msg_id="a", model="evil\u202ex",
                        latency_ms=5, tokens_in=3, tokens_out=1)
    detail = viewer_client.get(f"/sessions/{meta.session_id}/").content.decode()
    listed = viewer_client.get("/sessions/", {"day_from": "2026-11-20", "day_to": "2026-11-20"}).content.decode()
    for body in (detail, listed):
        assert "\u202e" not in body
    assert '<tr data-model="evilU+202Ex">' in detail and 'evil<span class="ctl"' in detail
    assert re.search(r'<td data-col="cost"[^>]*>no price</td>', listed)

