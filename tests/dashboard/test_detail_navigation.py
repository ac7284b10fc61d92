"""The session page's timeline for long conversations: the order toggle (in the URL), "Go to
turn N" and "First turn" (a window around the turn, marked, with working links to the newer
turns), turn anchors, long turns collapsed, the live refresh of a window; and the page's other
panels: the connection shown, the read details behind "show read paths", META read once."""

from __future__ import annotations

import re
from urllib.parse import unquote

import pytest
from django.urls import reverse

from sessions_app import services
from sessions_app.realtime import connection_put, presence_heartbeat
from sessions_app.selectors import detail
from tests.builders import make_session
from tests.fixtures.dynamodb_calls import dynamodb_calls

TURN_LI = re.compile(r'<li class="turn [^"]*" id="turn-(\d+)"')


def _seqs(body: str) -> list[int]:
    return [int(s) for s in TURN_LI.findall(body)]


def _page(client, meta, **params) -> str:
    response = client.get(reverse("dashboard:session_detail", args=[meta.session_id]), params)
    assert response.status_code == 200
    return response.content.decode()


def _part(client, meta, **params) -> str:
    response = client.get(reverse("dashboard:session_turns", args=[meta.session_id]), params, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def _timeline(body: str) -> str:
    """The timeline element's opening tag."""
    return re.search(r'<ol class="timeline" id="timeline"[^>]*>', body).group(0)


@pytest.fixture
def long_session(console):
    """200 turns, written through the service like the bot's appends."""
    return make_session(turns=200, customer_id="cust-long")


# --- order ---------------------------------------------------------------------------------------

def test_the_order_toggle_is_in_the_url_and_shows_the_same_turns_the_other_way(console, viewer_client):
    meta = make_session(turns=120)
    newest = _page(viewer_client, meta)
    assert _seqs(newest) == list(range(120, 70, -1)) and 'data-order="newest"' in _timeline(newest)
    oldest = _page(viewer_client, meta, order="oldest")
    assert _seqs(oldest) == list(range(71, 121)) and 'data-order="oldest"' in _timeline(oldest)
    assert "oldest first · 120 turns" in oldest
    # Oldest first, "Load older turns" is above the turns and keeps the order.
    assert oldest.index('id="load-older"') < oldest.index('id="turn-71"')
    cursor = unquote(re.search(r'turns/\?cursor=([^"&]+)&amp;order=oldest"', oldest).group(1))
    older = _part(viewer_client, meta, cursor=cursor, order="oldest")
    assert _seqs(older) == list(range(21, 71))
    assert older.index('id="load-older"') < older.index('id="turn-21"')
    # The toggle: each order's link, the current one marked.
    url = reverse("dashboard:session_detail", args=[meta.session_id])
    assert f'href="{url}?order=oldest#timeline-card" id="order-oldest" aria-current="true"' in oldest
    assert f'href="{url}#timeline-card" id="order-newest">' in oldest
    assert f'href="{url}#timeline-card" id="order-newest" aria-current="true"' in newest
    # Anything else is the default.
    assert _seqs(_page(viewer_client, meta, order="sideways")) == list(range(120, 70, -1))


# --- go to turn, first turn ----------------------------------------------------------------------

def test_first_turn_of_a_long_session_is_a_window_not_every_turn(console, viewer_client, long_session):
    meta = long_session
    body = _page(viewer_client, meta, at=1)
    assert _seqs(body) == list(range(50, 0, -1))  # one page, not 200 turns
    assert re.search(r'<li class="turn role-user turn--found" id="turn-1"', body) and body.count("turn--found") == 1
    assert 'data-found-turn="1"' in _timeline(body)
    assert "Start of the conversation." in body and 'id="load-older"' not in body
    assert "turns 1–50 on the page" in body
    # The newer turns: "Load newer turns" carries on after turn 50, and the page can jump back.
    after = re.search(r'hx-get="([^"]+)" hx-target="#load-newer"', body).group(1)
    assert after == reverse("dashboard:session_turns", args=[meta.session_id]) + "?after=50"
    newer = viewer_client.get(after.replace("&amp;", "&")).content.decode()
    assert _seqs(newer) == list(range(100, 50, -1))
    assert 'id="load-newer" data-after="100"' in newer and "Start of the conversation." not in newer
    last = _part(viewer_client, meta, after=150)
    assert _seqs(last) == list(range(200, 150, -1)) and 'id="load-newer"' not in last
    assert _part(viewer_client, meta, after=200).strip() == ""
    assert "Jump to the newest turns" in body
    # Oldest first: the same window, read down from turn 1.
    body = _page(viewer_client, meta, at=1, order="oldest")
    assert _seqs(body) == list(range(1, 51))
    assert body.index("Start of the conversation.") < body.index('id="turn-1"') < body.index('id="load-newer"')
    newer = _part(viewer_client, meta, after=50, order="oldest")
    assert _seqs(newer) == list(range(51, 101))
    assert newer.index('id="turn-100"') < newer.index('id="load-newer"')
    assert "?after=100&amp;order=oldest" in newer


def test_go_to_turn_renders_a_window_around_it_with_both_edges(console, viewer_client, long_session):
    meta = long_session
    body = _page(viewer_client, meta, at=100)
    assert _seqs(body) == list(range(125, 75, -1))
    assert re.search(r'turn--found" id="turn-100"', body) and 'data-found-turn="100"' in body
    assert 'id="load-newer" data-after="125"' in body and 'id="load-older"' in body
    cursor = unquote(re.search(r'turns/\?cursor=([^"&]+)"', body).group(1))
    assert _seqs(_part(viewer_client, meta, cursor=cursor)) == list(range(75, 25, -1))
    # Near the end the window stays a whole page: 151–200.
    assert _seqs(_page(viewer_client, meta, at=199)) == list(range(200, 150, -1))
    # The form: the number and the order travel as GET parameters; its bounds are the session's.
    url = reverse("dashboard:session_detail", args=[meta.session_id])
    form = re.search(r'<form method="get" action="([^"]+)" class="goto-form" id="goto-form">(.*?)</form>', body, re.S)
    assert form.group(1) == f"{url}#timeline-card"
    assert 'name="at" id="goto-turn" min="1" max="200"' in form.group(2) and 'value="100"' in form.group(2)
    oldest = _page(viewer_client, meta, at=100, order="oldest")
    assert '<input type="hidden" name="order" value="oldest">' in oldest
    assert f'href="{url}?at=1&amp;order=oldest#turn-1" id="first-turn-link"' in oldest
    assert f'href="{url}?at=1#turn-1" id="first-turn-link"' in body
    # The order toggle keeps the turn the page is at.
    assert f'href="{url}?at=100&amp;order=oldest#turn-100" id="order-oldest"' in body


@pytest.mark.parametrize("raw", ["0", "-1", "x", "1.5", ""])
def test_a_go_to_that_is_not_a_turn_number_is_ignored(console, viewer_client, raw):
    meta = make_session(turns=60)
    body = _page(viewer_client, meta, at=raw)
    assert _seqs(body) == list(range(60, 10, -1)) and "data-found-turn" not in body and "goto-missing" not in body


def test_a_go_to_past_the_last_turn_says_so(console, viewer_client):
    meta = make_session(turns=60)
    body = _page(viewer_client, meta, at=61)
    assert _seqs(body) == list(range(60, 10, -1)) and "data-found-turn" not in body
    assert "There is no turn 61: this session has 60 turns." in body


def test_every_turn_number_links_to_its_anchor(console, viewer_client):
    meta = make_session(turns=3)
    body = _page(viewer_client, meta)
    for seq in (1, 2, 3):
        assert f'id="turn-{seq}"' in body
        assert f'<a class="turn-link" href="#turn-{seq}" title="Link to turn {seq}">#{seq}</a>' in body
    assert 'data-turn-count="3"' in _timeline(body)  # timeline.js asks for ?at= when #turn-N is not shown


def test_a_session_without_turns_has_no_timeline_tools(console, viewer_client):
    meta = make_session()
    body = _page(viewer_client, meta, at=1)
    assert _seqs(body) == [] and "goto-form" not in body and "There is no turn 1" in body


# --- the live refresh of a window ---------------------------------------------------------------

def test_the_live_refresh_of_a_window_keeps_the_window_and_the_order(console, viewer_client, long_session):
    meta = long_session
    body = _part(viewer_client, meta, down_to=76, up_to=125)
    assert _seqs(body) == list(range(125, 75, -1)) and 'id="load-newer" data-after="125"' in body
    body = _part(viewer_client, meta, down_to=76, up_to=125, order="oldest")
    assert _seqs(body) == list(range(76, 126))
    # A window that reached the newest turn is the newest turns again (down to the oldest shown).
    body = _part(viewer_client, meta, down_to=140, order="oldest")
    assert _seqs(body) == list(range(101, 201)) and 'id="load-newer"' not in body
    # The same for the page itself (live.js's status refresh asks the page with the same query).
    page = _page(viewer_client, meta, down_to=76, up_to=125, order="oldest")
    assert _seqs(page) == list(range(76, 126)) and "data-found-turn" not in page


# --- long turns ----------------------------------------------------------------------------------

def test_long_turns_are_collapsed_with_a_show_all_toggle(console, viewer_client):
    meta = make_session()
    limit = detail.LONG_TURN_BYTES
    texts = {
        1: "a" * (limit - 1),  # one byte short: shown whole
        2: "b" * limit,  # exactly the limit
        3: "巻" * (limit // 3 + 1),  # 3 bytes a character: fewer characters, as many bytes
        4: "short",
    }
    for seq, text in texts.items():
        services.turn_write(session_id=meta.session_id, role="user", text=text, client_msg_id=f"L{seq}")
    body = _page(viewer_client, meta)
    collapsed = [int(s) for s in re.findall(r'<details class="turn-long" data-seq="(\d+)">', body)]
    assert sorted(collapsed) == [2, 3]
    turn2 = body[body.index('id="turn-2"'):body.index('id="turn-1"')]
    # A preview, then the whole text inside the <details> (no script: CSP-proof).
    assert f"Long turn: show all {limit} characters" in turn2
    assert re.search(r'<div class="turn-text turn-preview">b{599}…</div>', turn2)
    assert f'<div class="turn-text">{"b" * limit}</div>' in turn2
    assert "<details" not in body[body.index('id="turn-1"'):]
    # Older pages and the live refresh collapse them too.
    part = _part(viewer_client, meta, down_to=1)
    assert sorted(int(s) for s in re.findall(r'data-seq="(\d+)">', part)) == [2, 3]


def test_the_threshold_is_the_constant(console, viewer_client, monkeypatch):
    meta = make_session()
    services.turn_write(session_id=meta.session_id, role="user", text="x" * 100, client_msg_id="c1")
    assert "turn-long" not in _page(viewer_client, meta)
    monkeypatch.setattr(detail, "LONG_TURN_BYTES", 100)
    assert '<details class="turn-long" data-seq="1">' in _page(viewer_client, meta)


# --- the connection, read paths, one META read -----------------------------------------------------

def _connection_cell(body: str) -> str:
    return re.search(r'<dd id="presence-connection">(.*?)</dd>', body, re.S).group(1)


def test_the_connection_shows_the_mapped_connection_or_none_mapped(console, viewer_client):
    meta = make_session(turns=1)
    assert 'data-connection="none">none mapped<' in _connection_cell(_page(viewer_client, meta))
    # A WebSocket connection mapped (PUT /connections/{id}), no heartbeat naming it.
    connection_put(connection_id="conn-ws-1", session_id=meta.session_id)
    cell = _connection_cell(_page(viewer_client, meta))
    assert '<code class="connection-id" data-connection="conn-ws-1">conn-ws-1</code>' in cell and "—" not in cell
    # A heartbeat naming another connection: both.
    presence_heartbeat(session_id=meta.session_id, connection_id="conn-hb-2")
    cell = _connection_cell(_page(viewer_client, meta))
    assert 'data-connection="conn-ws-1"' in cell and 'data-connection="conn-hb-2"' in cell


def _read_details(body: str) -> list[str]:
    """The class attribute of every provenance badge."""
    return re.findall(r'<span class="(prov[^"]*)"', body)


def test_every_read_detail_on_the_detail_page_is_a_read_path(console, viewer_client):
    meta = make_session(turns=110)
    body = _page(viewer_client, meta)
    # Session, presence, rate window, summary, staff on the session, timeline: each a read path.
    assert len(_read_details(body)) >= 6 and all("read-path" in c for c in _read_details(body))
    assert "read from <b>" not in re.sub(r'<span class="[^"]*read-path[^"]*"[^>]*>.*?</span>', "", body, flags=re.S)
    cursor = unquote(re.search(r'turns/\?cursor=([^"&]+)"', body).group(1))
    older = _part(viewer_client, meta, cursor=cursor)
    assert '<span class="note read-path">last page read from DynamoDB in' in older
    # The summary panel's own partial (polled while pending) and the staff ping say it the same way.
    panel = viewer_client.get(reverse("dashboard:session_summary_panel", args=[meta.session_id])).content.decode()
    ping = viewer_client.post(reverse("dashboard:session_viewing", args=[meta.session_id])).content.decode()
    for part in (panel, ping):
        assert len(_read_details(part)) == 1 and "read-path" in _read_details(part)[0]


def test_the_page_reads_meta_once_strongly_consistent(console, viewer_client):
    meta = make_session(turns=3)
    with dynamodb_calls() as calls:
        body = _page(viewer_client, meta)
    assert calls.count("GetItem") == 1  # META, for every panel (no summary yet: nothing else to get)
    assert re.search(r'<h2>Session <span class="prov read-path"[^>]*>read from <b>DynamoDB \(ConsistentRead\)</b>', body)
