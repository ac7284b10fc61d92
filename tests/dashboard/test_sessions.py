"""Sessions list (filters, cursors, honest short pages), session detail, timeline, customer page."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse

from sessions_app import services
from sessions_app.clock import utcnow
from sessions_app.models import SessionMeta
from sessions_app.realtime import presence_heartbeat, rate_limit_hit
from sessions_app.selectors.browse import session_browse
from sessions_app.selectors.filters import SessionFilter
from sessions_app.selectors.summaries import summary_state_key
from tests.builders import at, make_session

XSS_SCRIPT = '<script>alert("x")</script>'
XSS_IMG = '<img src=x onerror="alert(1)">'
JAPANESE = "進撃の巨人の34巻は在庫ありますか？"


def _listed_ids(body: str) -> list[str]:
    return re.findall(r'href="/sessions/([0-9a-f]{32})/"', body)


def test_list_shows_sessions_newest_first_with_columns(console, viewer_client):
    old = make_session(customer_id="cust-a", channel="web", started_at=at("2026-11-20"), turns=3)
    new = make_session(customer_id="cust-b", channel="line", started_at=at("2026-11-21"), turns=1)
    body = viewer_client.get(reverse("dashboard:session_list"), {"day_from": "2026-11-19", "day_to": "2026-11-22"}).content.decode()
    assert _listed_ids(body) == [new.session_id, old.session_id]
    assert "cust-a" in body and "line" in body and "2026-11-20 08:00" in body
    assert "dot-offline" in body


def test_filters_combine_and_stay_in_the_url(console, viewer_client):
    keep = make_session(customer_id="cust-a", channel="app", started_at=at("2026-11-20"))
    make_session(customer_id="cust-a", channel="web", started_at=at("2026-11-20", 5))
    make_session(customer_id="cust-b", channel="app", started_at=at("2026-11-20", 9))
    make_session(customer_id="cust-a", channel="app", started_at=at("2026-11-10"))
    params = {"day_from": "2026-11-19", "day_to": "2026-11-21", "customer": "cust-a", "channel": "app", "status": "active"}
    response = viewer_client.get(reverse("dashboard:session_list"), params)
    body = response.content.decode()
    assert _listed_ids(body) == [keep.session_id]
    # The form is a GET form pre-filled from the URL.
    assert 'value="cust-a"' in body and '<option value="app" selected>' in body


def test_status_filter(console, viewer_client):
    closed = make_session(started_at=at("2026-11-20"))
    services.session_close(session_id=closed.session_id)
    make_session(started_at=at("2026-11-20", 1))
    body = viewer_client.get(reverse("dashboard:session_list"), {"day_from": "2026-11-20", "day_to": "2026-11-20", "status": "closed"}).content.decode()
    assert _listed_ids(body) == [closed.session_id]


def test_summary_state_filter(console, viewer_client):
    failed = make_session(started_at=at("2026-11-20"), turns=2)
    # As the failed run's record leaves META: the mark and the by_summary_state key.
    SessionMeta.get(failed.pk, failed.sk).update(actions=[
        SessionMeta.summary_state.set("failed"),
        SessionMeta.gsi8pk.set(summary_state_key(session_id=failed.session_id, state="failed"))])
    make_session(started_at=at("2026-11-20", 1), turns=2)
    base = {"day_from": "2026-11-20", "day_to": "2026-11-20"}
    assert _listed_ids(viewer_client.get(reverse("dashboard:session_list"), {**base, "summary": "failed"}).content.decode()) == [failed.session_id]
    assert len(_listed_ids(viewer_client.get(reverse("dashboard:session_list"), {**base, "summary": "none"}).content.decode())) == 1


def test_online_filter_lists_from_presence(console, viewer_client):
    online = make_session(started_at=at("2026-11-20"))
    make_session(started_at=at("2026-11-20", 1))
    presence_heartbeat(session_id=online.session_id, connection_id="conn-1")
    body = viewer_client.get(reverse("dashboard:session_list"), {"online": "on"}).content.decode()
    assert _listed_ids(body) == [online.session_id]
    assert "dot-online" in body and "listed from the presence set" in body


def test_invalid_filter_is_400_with_the_error_shown(console, viewer_client):
    response = viewer_client.get(reverse("dashboard:session_list"), {"day_from": "2026-11-21", "day_to": "2026-11-20"})
    assert response.status_code == 400
    assert "must not be after To" in response.content.decode()


def test_cursor_pages_without_gaps_or_duplicates(console, viewer_client):
    made = [make_session(started_at=at("2026-11-20", n), customer_id=f"c-{n}").session_id for n in range(30)]
    url = reverse("dashboard:session_list")
    first = viewer_client.get(url, {"day_from": "2026-11-20", "day_to": "2026-11-20"}).content.decode()
    page1 = _listed_ids(first)
    next_href = re.search(r'href="(\?[^"]*cursor=[^"]+)" rel="next"|rel="next" href="(\?[^"]+)"', first)
    assert len(page1) == 25 and next_href
    href = (next_href.group(1) or next_href.group(2)).replace("&amp;", "&")
    second = viewer_client.get(url + href).content.decode()
    page2 = _listed_ids(second)
    assert page1 + page2 == list(reversed(made))
    assert 'rel="next"' not in second and "End of list." in second


def test_tampered_cursor_is_400(console, viewer_client):
    response = viewer_client.get(reverse("dashboard:session_list"), {"cursor": "forged"})
    assert response.status_code == 400


def test_short_page_says_why_and_offers_next(console, settings):
    """Requests nobody answered for too long are indexed as pending but show as stale: the
    "none" listing reads the pending partitions too, and a page of only those comes back short."""
    for n in range(6):
        _mark_pending(make_session(started_at=at("2026-11-20", n), turns=1), minutes_ago=settings.SUMMARY_PENDING_MINUTES + 1)
    day = at("2026-11-20").date()
    page = session_browse(filters=SessionFilter(day_from=day, day_to=day, summary_state="none"), limit=3, max_calls=1)
    assert page.rows == [] and page.cursor is not None
    assert page.short_reason.startswith("read budget reached")


def test_detail_shows_meta_timeline_provenance_and_presence(console, viewer_client, settings):
    meta = make_session(turns=4, customer_id="cust-x")
    rate_limit_hit(customer_id="cust-x")
    services.turn_write(session_id=meta.session_id, role="assistant", text="answer", client_msg_id="m-5",
                        model="claude-haiku", latency_ms=812, tokens_in=120, tokens_out=40)
    presence_heartbeat(session_id=meta.session_id, connection_id="conn-abc")
    body = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert "cust-x" in body and "claude-haiku" in body and "812" in body and "120→40 tokens" in body
    assert body.index('id="turn-5"') < body.index('id="turn-1"')  # newest first
    assert "role-assistant" in body and "role-user" in body
    assert "read from <b>DynamoDB</b>" in body and "read from <b>Redis</b>" in body
    assert "conn-abc" in body and "online" in body
    # The customer's rate window, read from Redis: one counted turn leaves limit - 1.
    assert f"{settings.RATE_LIMIT_TURNS - 1} of {settings.RATE_LIMIT_TURNS} turns left" in body


def test_chat_text_is_escaped_everywhere(console, viewer_client):
    meta = make_session(customer_id="cust-x")
    for n, text in enumerate([XSS_SCRIPT, XSS_IMG, JAPANESE], start=1):
        services.turn_write(session_id=meta.session_id, role="user", text=text, client_msg_id=f"x-{n}")
    body = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert XSS_SCRIPT not in body and XSS_IMG not in body
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body
    assert JAPANESE in body


def test_load_older_pages_through_a_long_timeline(console, viewer_client):
    meta = make_session(turns=120)
    body = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert 'id="turn-120"' in body and 'id="turn-71"' in body and 'id="turn-70"' not in body
    cursor = re.search(r'turns/\?cursor=([^"]+)"', body).group(1)
    older = viewer_client.get(reverse("dashboard:session_turns", args=[meta.session_id]) + "?cursor=" + cursor,
                              HTTP_HX_REQUEST="true").content.decode()
    seqs = [int(s) for s in re.findall(r'id="turn-(\d+)"', older)]
    assert seqs == list(range(70, 20, -1))
    assert "Load older turns" in older
    cursor = re.search(r'turns/\?cursor=([^"]+)"', older).group(1)
    last = viewer_client.get(reverse("dashboard:session_turns", args=[meta.session_id]) + "?cursor=" + cursor).content.decode()
    assert [int(s) for s in re.findall(r'id="turn-(\d+)"', last)] == list(range(20, 0, -1))
    assert "Start of the conversation." in last and "Load older" not in last


def test_customer_page_lists_only_that_customer(console, viewer_client):
    mine = [make_session(customer_id="cust-m", started_at=at("2026-11-2" + str(d))).session_id for d in range(3)]
    make_session(customer_id="cust-other")
    body = viewer_client.get(reverse("dashboard:customer_detail", args=["cust-m"])).content.decode()
    assert _listed_ids(body) == list(reversed(mine))


def test_summary_coverage_is_shown(console, viewer_client):
    from sessions_app.models import Summary
    from sessions_app import keys
    from datetime import datetime, timezone

    meta = make_session(turns=5)
    Summary(meta.pk, keys.summary_sk(3), through_seq=3, text="Customer asked about <b>volume 3</b>",
            generator="extractive", created_at=datetime.now(timezone.utc)).save()
    SessionMeta.get(meta.pk, meta.sk).update(actions=[SessionMeta.summary_through.set(3)])
    body = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert "covers turns 1–3 of 5" in body
    assert "summary-stale" in body and "&lt;b&gt;volume 3&lt;/b&gt;" in body


def _mark_pending(meta, *, minutes_ago: float) -> None:
    """META as the summary service leaves it after enqueuing a task ``minutes_ago``."""
    SessionMeta.get(meta.pk, meta.sk).update(actions=[
        SessionMeta.summary_state.set("pending"), SessionMeta.summary_task_id.set("task-lost"),
        SessionMeta.gsi8pk.set(summary_state_key(session_id=meta.session_id, state="pending")),
        SessionMeta.summary_requested_at.set(utcnow() - timedelta(minutes=minutes_ago)),
    ])


def test_a_pending_request_older_than_the_timeout_shows_stale_and_can_be_retried(console, supervisor_client, settings):
    meta = make_session(turns=2)
    _mark_pending(meta, minutes_ago=settings.SUMMARY_PENDING_MINUTES + 1)
    body = supervisor_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert 'data-summary-state="stale"' in body and 'data-summary-state="pending"' not in body
    assert 'hx-trigger="every 2s"' not in body  # nothing to wait for: the panel does not poll
    button = re.search(r"<button[^>]*>Regenerate summary</button>", body).group(0)
    assert "disabled" not in button
    panel = supervisor_client.get(reverse("dashboard:session_summary_panel", args=[meta.session_id])).content.decode()
    assert 'data-summary-state="stale"' in panel


def test_a_recent_pending_request_shows_pending_with_the_button_disabled(console, supervisor_client, settings):
    meta = make_session(turns=2)
    _mark_pending(meta, minutes_ago=1)
    body = supervisor_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert 'data-summary-state="pending"' in body and 'hx-trigger="every 2s"' in body
    assert re.search(r"<button disabled>Regenerate summary</button>", body)


def test_list_and_summary_filter_use_the_same_state_as_the_detail_page(console, viewer_client, settings):
    lost = make_session(started_at=at("2026-11-20"), turns=2)
    waiting = make_session(started_at=at("2026-11-20", 1), turns=2)
    _mark_pending(lost, minutes_ago=settings.SUMMARY_PENDING_MINUTES + 1)
    _mark_pending(waiting, minutes_ago=1)
    base = {"day_from": "2026-11-20", "day_to": "2026-11-20"}
    url = reverse("dashboard:session_list")
    assert _listed_ids(viewer_client.get(url, {**base, "summary": "stale"}).content.decode()) == [lost.session_id]
    assert _listed_ids(viewer_client.get(url, {**base, "summary": "pending"}).content.decode()) == [waiting.session_id]
    listing = viewer_client.get(url, base).content.decode()
    assert listing.count('class="badge summary-stale"') == 1 and listing.count('class="badge summary-pending"') == 1


def test_the_list_pages_by_the_configured_page_size(console, viewer_client, settings):
    settings.PAGE_SIZE = 3
    made = [make_session(started_at=at("2026-11-20", n)).session_id for n in range(5)]
    url = reverse("dashboard:session_list")
    first = viewer_client.get(url, {"day_from": "2026-11-20", "day_to": "2026-11-20"}).content.decode()
    assert _listed_ids(first) == list(reversed(made))[:3] and 'rel="next"' in first
    customer = viewer_client.get(reverse("dashboard:customer_detail", args=["cust-1"])).content.decode()
    assert len(_listed_ids(customer)) == 3 and 'rel="next"' in customer


def test_a_filter_the_form_accepts_but_the_listing_cannot_serve_is_400_naming_the_field(console, viewer_client):
    response = viewer_client.get(reverse("dashboard:session_list"), {"day_from": "2020-01-01", "day_to": "2026-11-20"})
    assert response.status_code == 400
    assert "a day range spans at most 400 days" in response.content.decode()
