"""The console's transcript search page (``dashboard:search``), the query box on every page, the
detail page reaching the turn a result links to, and the overview's search index panel.

The search index is one SQLite file for the whole test session: every test searches within a
customer of its own or for a word of its own."""

from __future__ import annotations

import re
import sqlite3
import uuid

import pytest
from django.urls import reverse

from sessions_app import services
from sessions_app.models import AuditLog
from sessions_app.services.search_index import search_reindex_sessions
from sessions_app.services.turns import turn_append
from tests.builders import at, make_session
from tests.fixtures.staff import staff_user

SEARCH = "/search/"


@pytest.fixture
def customer() -> str:
    return f"cust-{uuid.uuid4().hex[:10]}"


def unique_word() -> str:
    """A Latin word no other test indexes (letters only: digits would be numbers of their own)."""
    return "zq" + "".join(chr(ord("g") + int(c)) if c.isdigit() else c for c in uuid.uuid4().hex[:10])


def indexed(customer: str, *texts: str, channel: str = "web", started_at=None, turns: int = 0) -> str:
    """A session with ``turns`` filler turns and then these (user, assistant, …), indexed at once."""
    meta = make_session(customer_id=customer, channel=channel, started_at=started_at, turns=turns)
    for n, text in enumerate(texts, turns + 1):
        turn_append(session_id=meta.session_id, role="user" if n % 2 else "assistant", text=text, client_msg_id=f"s-{n}")
    search_reindex_sessions(session_ids=[meta.session_id])
    return meta.session_id


def page(client, expect: int = 200, **params) -> str:
    response = client.get(SEARCH, params)
    assert response.status_code == expect, response.content.decode()[:2000]
    return response.content.decode()


def sessions_shown(body: str) -> list[str]:
    return re.findall(r'<article class="card search-session" data-session-id="([^"]+)"', body)


def hits_shown(body: str) -> list[tuple[str, int]]:
    found = []
    for session_id, block in re.findall(r'data-session-id="([^"]+)">(.*?)</article>', body, re.S):
        found += [(session_id, int(seq)) for seq in re.findall(r'<li class="search-hit [^"]*" data-seq="(\d+)"', block)]
    return found


def field_error(body: str, field: str) -> str | None:
    match = re.search(rf'<span class="error" data-field="{field}">(.*?)</span>', body, re.S)
    return match.group(1) if match else None


# --- access -------------------------------------------------------------------------------------

def test_the_route_is_named_search():
    assert reverse("dashboard:search") == SEARCH


def test_anonymous_is_sent_to_login(console, client):
    response = client.get(SEARCH, {"q": "hello"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/search/")


@pytest.mark.parametrize("group, is_staff", [(None, True), ("Supervisor", False)])
def test_without_the_permission_it_is_403_and_like_every_read_not_audited(console, client, group, is_staff):
    client.force_login(staff_user(username="nobody", group=group, is_staff=is_staff))
    assert client.get(SEARCH, {"q": "hello"}).status_code == 403
    assert client.get(SEARCH).status_code == 403
    assert not AuditLog.objects.exists()  # a refused read is not audited (only actions are)


@pytest.mark.parametrize("group", ["Viewer", "Agent", "Supervisor"])
def test_every_group_that_reads_sessions_may_search(console, client, group):
    client.force_login(staff_user(username=f"u-{group.lower()}", group=group))
    assert client.get(SEARCH, {"q": "hello"}).status_code == 200


# --- results ------------------------------------------------------------------------------------

def test_results_are_grouped_by_session_with_marked_matches_and_links_to_the_turn(console, viewer_client, customer):
    first = indexed(customer, "ＯＮＥ ＰＩＥＣＥの105巻はありますか", "はい、105巻は在庫がございます。", channel="line")
    second = indexed(customer, "one piece 105 please")
    indexed(customer, "呪術廻戦の最新刊")  # no match
    body = page(viewer_client, q="one piece 105", customer=customer)
    assert sessions_shown(body) == [second, first]  # by their newest hit
    assert hits_shown(body) == [(second, 1), (first, 1)]
    assert "<mark>ＯＮＥ</mark> <mark>ＰＩＥＣＥ</mark>の<mark>105</mark>巻はありますか" in body
    assert f'href="/sessions/{first}/?turn=1#turn-1"' in body
    assert f'href="/sessions/{first}/"' in body and f'href="/customers/{customer}/"' in body
    assert "line" in body and "UTC" in body
    body = page(viewer_client, q="105", customer=customer)
    assert hits_shown(body) == [(second, 1), (first, 2), (first, 1)]  # one line per matching turn
    assert "はい、<mark>105</mark>巻は在庫がございます。" in body
    assert "<mark>巻</mark>" in page(viewer_client, q="巻", customer=customer)


def test_a_script_in_a_matching_turn_is_rendered_escaped(console, viewer_client, customer):
    word = unique_word()
    session_id = indexed(customer, f"<script>alert(1)</script> {word} <img src=x onerror=alert(2)>")
    body = page(viewer_client, q=word)
    assert hits_shown(body) == [(session_id, 1)]
    assert "<script>alert(1)</script>" not in body and "<img src=x" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert f"<mark>{word}</mark> &lt;img src=x onerror=alert(2)&gt;" in body
    # The query itself, echoed in the form, is escaped too.
    body = page(viewer_client, q=f'{word} "><script>alert(3)</script>')
    assert "<script>alert(3)" not in body and "&lt;script&gt;alert(3)" in body


def test_a_summary_hit_links_to_the_summary_panel(console, viewer_client, customer):
    from sessions_app.selectors.sessions import session_get
    from sessions_app.services.summaries import summary_write

    session_id = indexed(customer, "配送について", "確認します")
    summary_write(session_id=session_id, through_seq=2, text="お客様は配送の遅れを問い合わせた", generator="test",
                  expires_at=session_get(session_id=session_id).expires_at)
    search_reindex_sessions(session_ids=[session_id])
    body = page(viewer_client, q="問い合わせ", customer=customer)
    assert hits_shown(body) == [(session_id, 2)]
    assert f'href="/sessions/{session_id}/#summary-panel"' in body and "turns 1–2" in body
    assert "?turn=" not in body


def test_filters_combine(console, viewer_client, customer):
    keep = indexed(customer, "返品の手続き", channel="app", started_at=at("2026-11-20"))
    indexed(customer, "返品の手続き", channel="web", started_at=at("2026-11-20", 1))
    indexed(customer, "返品の手続き", channel="app", started_at=at("2026-11-19"))
    closed = indexed(customer, "返品の手続き", channel="app", started_at=at("2026-11-20", 2))
    services.session_close(session_id=closed, final_summary=False)
    search_reindex_sessions(session_ids=[closed])
    indexed(f"{customer}-other", "返品の手続き", channel="app", started_at=at("2026-11-20", 3))
    day = {"day_from": "2026-11-20", "day_to": "2026-11-20"}
    assert sessions_shown(page(viewer_client, q="返品", customer=customer, channel="app", status="active", **day)) == [keep]
    assert sessions_shown(page(viewer_client, q="返品", customer=customer, status="closed")) == [closed]
    assert set(sessions_shown(page(viewer_client, q="返品", customer=customer, channel="app", **day))) == {keep, closed}
    assert len(sessions_shown(page(viewer_client, q="返品", customer=customer))) == 4
    # The form keeps what was chosen.
    body = page(viewer_client, q="返品", customer=customer, channel="app", status="closed", order="relevance", **day)
    assert '<option value="app" selected>' in body and '<option value="closed" selected>' in body
    assert '<option value="relevance" selected>' in body and 'value="2026-11-20"' in body


def test_next_page_follows_the_cursor_without_repeats_and_there_is_no_total(console, viewer_client, customer, monkeypatch):
    from dashboard import views

    monkeypatch.setattr(views, "SEARCH_PAGE_TURNS", 2)
    word = unique_word()
    made = {(indexed(customer, f"{word} {n}"), 1) for n in range(5)}
    seen, params, pages = [], {"q": word, "customer": customer}, 0
    while True:
        body = page(viewer_client, **params)
        pages += 1
        seen += hits_shown(body)
        assert "of 5" not in body and " total" not in body
        nxt = re.search(r'<a class="button" rel="next" href="\?([^"]+)">Next page', body)
        if not nxt:
            assert "End of results." in body
            break
        query = nxt.group(1).replace("&amp;", "&")
        from urllib.parse import parse_qsl

        params = dict(parse_qsl(query))
        assert params["q"] == word and params["customer"] == customer and params["cursor"]
    assert pages == 3 and len(seen) == len(set(seen)) == 5 and set(seen) == made


def test_empty_query_shows_the_form_only(console, viewer_client):
    for params in ({}, {"q": ""}, {"q": "   "}, {"q": "", "channel": "web"}):
        body = page(viewer_client, **params)
        assert 'name="q"' in body and "search-results" not in body and 'class="error"' not in body
    assert 'id="search-index"' in body  # the index state is shown with the form


@pytest.mark.parametrize("params, field, says", [
    ({"q": "hello", "cursor": "garbage"}, "cursor", "invalid cursor"),
    ({"q": "hello", "day_from": "2026-13-01"}, "day_from", "valid date"),
    ({"q": "hello", "day_to": "yesterday"}, "day_to", "valid date"),
    ({"q": "hello", "day_from": "2026-11-21", "day_to": "2026-11-20"}, "day_from", "From must not be after To"),
    ({"q": "!!! ???"}, "q", "no letters"),
    ({"q": "x" * 201}, "q", "at most 200"),
    ({"q": "hello", "order": "oldest"}, "order", "valid choice"),
    ({"q": "hello", "channel": "fax"}, "channel", "valid choice"),
    ({"q": "hello", "customer": "bad id"}, "customer", ""),
])
def test_bad_input_is_shown_next_to_its_field(console, viewer_client, params, field, says):
    body = page(viewer_client, 400, **params)
    error = field_error(body, field)
    assert error is not None, body
    assert says in error
    assert "search-results" not in body


def test_a_cursor_of_the_other_order_is_shown_on_the_cursor(console, viewer_client, customer, monkeypatch):
    from dashboard import views

    monkeypatch.setattr(views, "SEARCH_PAGE_TURNS", 1)
    word = unique_word()
    for n in range(2):
        indexed(customer, f"{word} {n}")
    body = page(viewer_client, q=word)
    cursor = re.search(r'cursor=([^"&]+)"', body).group(1)
    from urllib.parse import unquote

    body = page(viewer_client, 400, q=word, order="relevance", cursor=unquote(cursor))
    assert "order=newest" in field_error(body, "cursor") and "start again from the first page" in body


# --- the query box on every page ----------------------------------------------------------------

def test_the_query_box_is_on_every_console_page(console, viewer_client):
    meta = make_session(turns=2)
    for url in (reverse("dashboard:overview"), reverse("dashboard:session_list"), reverse("dashboard:handoff_queue"),
                reverse("dashboard:session_detail", args=[meta.session_id]),
                reverse("dashboard:customer_detail", args=[meta.customer_id])):
        body = viewer_client.get(url).content.decode()
        assert re.search(r'<form method="get" action="/search/" class="topbar-search" role="search">', body), url
        assert 'id="topbar-q"' in body and 'name="q"' in body and "data-search-box" in body, url
        assert '<script src="/static/dashboard/search-shortcut.js" defer></script>' in body, url
    # The search page has its own box (which "/" focuses), not a second one in the top bar.
    body = page(viewer_client)
    assert 'id="topbar-q"' not in body and body.count("data-search-box") == 1


def test_no_query_box_for_the_logged_out(console, client):
    body = client.get("/accounts/login/").content.decode()
    assert "topbar-q" not in body


# --- the detail page reaches the turn -----------------------------------------------------------

def _timeline_seqs(body: str) -> list[int]:
    return [int(s) for s in re.findall(r'<li class="turn [^"]*" id="turn-(\d+)"', body)]


def test_the_detail_page_renders_down_to_an_old_turn_and_marks_it(console, viewer_client):
    meta = make_session(turns=130)
    url = reverse("dashboard:session_detail", args=[meta.session_id])
    plain = viewer_client.get(url).content.decode()
    assert _timeline_seqs(plain) == list(range(130, 80, -1)) and "turn--found" not in plain
    body = viewer_client.get(url, {"turn": 10}).content.decode()
    # Whole pages of 50, as "Load older turns" would have loaded them: here down to turn 1.
    assert _timeline_seqs(body) == list(range(130, 0, -1))
    assert re.search(r'<li class="turn role-assistant turn--found" id="turn-10"', body)
    assert body.count("turn--found") == 1 and 'data-found-turn="10"' in body
    assert "Start of the conversation." in body
    assert '<script src="/static/dashboard/timeline-find.js" defer></script>' in body
    # A turn on the first page: the first page, marked.
    body = viewer_client.get(url, {"turn": 81}).content.decode()
    assert _timeline_seqs(body) == list(range(130, 80, -1)) and 'id="turn-81"' in body
    assert re.search(r'turn--found" id="turn-81"', body)
    body = viewer_client.get(url, {"turn": 80}).content.decode()
    assert _timeline_seqs(body) == list(range(130, 30, -1)) and "Load older turns" in body


@pytest.mark.parametrize("raw", ["0", "-3", "abc", "1e3", "９", "999", ""])
def test_a_turn_hint_out_of_range_or_not_a_number_is_ignored(console, viewer_client, raw):
    meta = make_session(turns=60)
    response = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id]), {"turn": raw})
    assert response.status_code == 200
    body = response.content.decode()
    assert _timeline_seqs(body) == list(range(60, 10, -1)) and "data-found-turn" not in body


def test_older_than_the_bound_the_page_renders_what_it_may_and_the_script_loads_the_rest(console, viewer_client, monkeypatch):
    from sessions_app.selectors import detail

    monkeypatch.setattr(detail, "DETAIL_FIND_MAX_TURNS", 100)
    meta = make_session(turns=130)
    body = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id]), {"turn": 10}).content.decode()
    assert _timeline_seqs(body) == list(range(130, 30, -1))
    assert 'data-found-turn="10"' in body and "Load older turns" in body  # timeline-find.js goes on from here


def test_the_live_refresh_keeps_the_turns_shown(console, viewer_client):
    meta = make_session(turns=130)
    url = reverse("dashboard:session_turns", args=[meta.session_id])
    assert _timeline_seqs(viewer_client.get(url).content.decode()) == list(range(130, 80, -1))
    body = viewer_client.get(url, {"down_to": 31}).content.decode()
    assert _timeline_seqs(body) == list(range(130, 30, -1)) and "turn--found" not in body
    detail = viewer_client.get(reverse("dashboard:session_detail", args=[meta.session_id]), {"down_to": 31}).content.decode()
    assert _timeline_seqs(detail) == list(range(130, 30, -1)) and "turn--found" not in detail
    assert "data-found-turn" not in detail


# --- the index state: the search page and the overview ------------------------------------------

def test_the_search_page_and_the_overview_show_the_index_state(console, viewer_client, customer):
    from datetime import timedelta

    from sessions_app.clock import utcnow
    from sessions_app.search import search_engine
    from sessions_app.search.engine import IndexBatch

    indexed(customer, "hello")
    # A rebuild moves no change-feed position; a batch from the feed does (only ever forward).
    search_engine().apply(IndexBatch(newest_change=utcnow() - timedelta(seconds=5)))
    body = page(viewer_client, q="hello", customer=customer)
    state = re.search(r'<p class="note search-index-state".*?</p>', body, re.S).group(0)
    assert 'data-metric="search-engine">sqlite<' in state
    assert re.search(r"newest change indexed \d+ s ago", state) and "not by itself a sign of being behind" in state
    overview = viewer_client.get(reverse("dashboard:overview")).content.decode()
    panel = re.search(r'<section class="card search-index-panel" id="search-index" data-index-state="ok">.*?</section>',
                      overview, re.S).group(0)
    assert 'data-metric="search-engine">sqlite<' in panel
    assert re.search(r'data-metric="search-sessions">\d+<', panel)
    assert re.search(r'data-metric="search-age">\d+ s ago', panel)
    # The overview's 10-second refresh carries the panel too.
    partial = viewer_client.get(reverse("dashboard:overview_metrics")).content.decode()
    assert 'id="search-index"' in partial


def test_an_unreadable_index_is_said_on_the_panel_not_a_500(console, viewer_client, monkeypatch):
    from sessions_app.selectors import overview

    def broken():
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(overview, "search_index_status", broken)
    response = viewer_client.get(reverse("dashboard:overview"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-index-state="unreadable"' in body
    assert "the search index could not be read: OperationalError: unable to open database file" in body
    body = page(viewer_client)
    assert "The search index could not be read (sqlite)" in body
