"""The console's hand-off: the "needs a human" queue, take over, reply, hand back — on a real
DynamoDB Local table and Redis, with the Agent group from migration 0005."""

from __future__ import annotations

import re
import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connections
from django.test import Client
from django.urls import reverse

from sessions_app import keys
from sessions_app.access import HANDLE, OPERATE, VIEW, staff_allowed
from sessions_app.models import AuditLog, SessionMeta, Turn
from sessions_app.selectors import overview as overview_selectors
from sessions_app.selectors.handoff import handoff_state
from sessions_app.services.handoff import handoff_request, handoff_take
from tests.builders import make_session
from tests.fixtures.staff import staff_user

XSS = '<img src=x onerror="alert(1)">'


# The title's count, recounted on every page (no 5 s memo).
pytestmark = pytest.mark.usefixtures("fresh_count")


def _waiting(reason: str = "customer asks for a person", **kwargs) -> SessionMeta:
    meta = make_session(turns=2, **kwargs)
    handoff_request(session_id=meta.session_id, reason=reason)
    return meta


def _meta(session_id: str) -> SessionMeta:
    return SessionMeta.get(keys.session_pk(session_id), keys.META_SK, consistent_read=True)


def _url(name: str, session_id: str) -> str:
    return reverse(f"dashboard:{name}", args=[session_id])


def _rows(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def _title(body: str) -> str:
    return re.search(r"<title>(.*?)</title>", body, re.S).group(1)


def _agent_turns(session_id: str) -> list[Turn]:
    return [t for t in Turn.query(keys.session_pk(session_id), Turn.sk.startswith("TURN#"), consistent_read=True)
            if t.role == "agent"]


# --- permissions ---------------------------------------------------------------------------------

def test_agent_and_supervisor_handle_viewer_does_not(console, agent, supervisor, viewer):
    assert staff_allowed(user=agent, perm=HANDLE) and staff_allowed(user=agent, perm=VIEW)
    assert not staff_allowed(user=agent, perm=OPERATE)
    assert staff_allowed(user=supervisor, perm=HANDLE)
    assert not staff_allowed(user=viewer, perm=HANDLE)
    assert set(Group.objects.get(name="Agent").permissions.values_list("codename", flat=True)) == {
        "view_chat_sessions", "handle_chat_sessions"}


# --- take over -----------------------------------------------------------------------------------

def test_take_over_makes_the_user_owner_and_shows_it(console, agent_client):
    meta = _waiting()
    response = agent_client.post(_url("session_takeover", meta.session_id), follow=True)
    assert response.status_code == 200
    stored = _meta(meta.session_id)
    assert (stored.owner, stored.owner_name) == ("ada", "Ada Okafor")
    assert handoff_state(stored)["state"] == "human"
    body = response.content.decode()
    assert "You have taken this session over" in body
    assert 'data-handoff-state="human"' in body and "Ada Okafor" in body and "(you)" in body
    assert 'id="reply-button"' in body and 'id="handback-button"' in body
    assert "returns to the queue after 15 min without a reply" in body
    (row,) = _rows("session_takeover")
    assert (row.actor_username, row.outcome, row.session_id, row.customer_id) == ("ada", "ok", meta.session_id, "cust-1")
    assert row.detail["owner"] == "Ada Okafor"


def test_two_staff_taking_over_at_once_get_one_owner_and_both_are_audited(console, agent, supervisor):
    meta = _waiting()
    clients = []
    for user in (agent, supervisor):
        client = Client()
        client.force_login(user)
        clients.append(client)
    # Both request threads use this test's database connection (the test runs inside its
    # transaction, which another connection could not see): the race is DynamoDB's.
    shared = connections["default"]
    shared.inc_thread_sharing()
    barrier = threading.Barrier(2)
    responses = [None, None]

    def take(i: int) -> None:
        connections["default"] = shared
        barrier.wait()
        responses[i] = clients[i].post(_url("session_takeover", meta.session_id))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    finally:
        shared.dec_thread_sharing()
    stored = _meta(meta.session_id)
    assert stored.owner in ("ada", "sam")
    winner_name = "Ada Okafor" if stored.owner == "ada" else "sam"
    rows = _rows("session_takeover")
    assert sorted(r.outcome for r in rows) == ["error", "ok"]
    ok = next(r for r in rows if r.outcome == "ok")
    failed = next(r for r in rows if r.outcome == "error")
    assert ok.actor_username == stored.owner and failed.actor_username != stored.owner
    assert failed.detail["owner"] == winner_name and winner_name in failed.detail["error"]
    assert failed.detail["error"].startswith("already_owned:")
    # The loser's page says who has it (409, not a 500); the winner was sent back to the session.
    loser = responses[0] if failed.actor_username == "ada" else responses[1]
    winner = responses[1] if loser is responses[0] else responses[0]
    assert winner.status_code == 302
    assert loser.status_code == 409
    assert f"already taken over by {winner_name}" in loser.content.decode()


def test_take_over_refusals_show_on_the_page(console, agent_client, supervisor):
    bot = make_session(turns=1)
    response = agent_client.post(_url("session_takeover", bot.session_id))
    assert response.status_code == 409
    assert "the bot has this session" in response.content.decode()
    assert _meta(bot.session_id).owner is None

    taken = _waiting()
    handoff_take(session_id=taken.session_id, username="sam", display_name="Sam Supervisor")
    htmx = agent_client.post(_url("session_takeover", taken.session_id), HTTP_HX_REQUEST="true")
    body = htmx.content.decode()
    assert htmx.status_code == 200  # htmx swaps 2xx only: the panel carries the refusal
    assert 'data-outcome="refused"' in body and "already taken over by Sam Supervisor" in body
    assert 'data-error-code="already_owned"' in body
    assert "<html" not in body  # the panel alone
    assert [r.outcome for r in _rows("session_takeover")] == ["error", "error"]

    missing = agent_client.post(_url("session_takeover", "no-such-session"))
    assert missing.status_code == 404
    assert agent_client.post(_url("session_takeover", "bad id!")).status_code == 404
    assert agent_client.get(_url("session_takeover", taken.session_id)).status_code == 405


def test_take_over_by_htmx_answers_with_the_panel(console, agent_client):
    meta = _waiting()
    response = agent_client.post(_url("session_takeover", meta.session_id), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith('<section class="card handoff-panel handoff-human" id="handoff-panel"')
    assert 'data-outcome="ok"' in body and 'id="reply-button"' in body


# --- reply ---------------------------------------------------------------------------------------

def test_reply_writes_an_agent_turn_with_its_author_and_shows_delivery(console, agent_client):
    meta = _waiting()
    agent_client.post(_url("session_takeover", meta.session_id))
    response = agent_client.post(_url("session_reply", meta.session_id), {"text": "こんにちは " + XSS}, follow=True)
    assert response.status_code == 200
    (turn,) = _agent_turns(meta.session_id)
    assert (turn.role, turn.author, turn.text) == ("agent", "Ada Okafor", "こんにちは " + XSS)
    assert turn.delivery_state in ("pending", "delivered", "failed", "not_configured")
    body = response.content.decode()
    assert "Reply sent." in body
    assert "by Ada Okafor" in body and f'data-delivery="{turn.delivery_state}"' in body
    assert XSS not in body and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in body
    (row,) = _rows("session_reply")
    assert (row.outcome, row.actor_username, row.detail["seq"]) == ("ok", "ada", int(turn.seq))
    assert XSS not in str(row.detail)  # the audit log does not copy what was said


def test_reply_by_htmx_updates_the_timeline_out_of_band(console, agent_client):
    meta = _waiting()
    agent_client.post(_url("session_takeover", meta.session_id))
    response = agent_client.post(_url("session_reply", meta.session_id), {"text": "on my way"}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and 'data-outcome="ok"' in body
    assert 'id="timeline" hx-swap-oob="true"' in body and "on my way" in body and "by Ada Okafor" in body


def test_delivery_states_are_shown_with_attempts_and_error(console, viewer_client):
    meta = _waiting()
    handoff_take(session_id=meta.session_id, username="ada", display_name="Ada")
    from sessions_app.services.handoff import staff_reply

    result = staff_reply(session_id=meta.session_id, username="ada", display_name="Ada", text="hello")
    turn = Turn.get(keys.session_pk(meta.session_id), keys.turn_sk(int(result.turn.seq)), consistent_read=True)
    turn.update(actions=[Turn.delivery_state.set("failed"), Turn.delivery_attempts.set(3),
                         Turn.delivery_error.set("HTTP 502 from " + XSS)])
    body = viewer_client.get(_url("session_detail", meta.session_id)).content.decode()
    assert 'data-delivery="failed"' in body and "delivery failed" in body and "3 attempts" in body
    assert "HTTP 502 from &lt;img" in body and XSS not in body
    turn.update(actions=[Turn.delivery_state.set("not_configured"), Turn.delivery_error.remove()])
    body = viewer_client.get(_url("session_detail", meta.session_id)).content.decode()
    assert "no webhook configured" in body


def test_bad_replies_are_field_errors_never_a_500(console, agent_client, settings):
    meta = _waiting()
    agent_client.post(_url("session_takeover", meta.session_id))
    for data in ({}, {"text": ""}, {"text": "   \n "}):
        response = agent_client.post(_url("session_reply", meta.session_id), data)
        assert response.status_code == 400, data
        assert 'id="reply-error"' in response.content.decode()
    settings.TURN_TEXT_MAX_BYTES = 10
    response = agent_client.post(_url("session_reply", meta.session_id), {"text": "x" * 11})
    assert response.status_code == 400
    assert "the limit is 10 bytes" in response.content.decode()
    htmx = agent_client.post(_url("session_reply", meta.session_id), {"text": "x" * 11}, HTTP_HX_REQUEST="true")
    assert htmx.status_code == 200 and 'id="reply-error"' in htmx.content.decode()
    assert 'name="text"' in htmx.content.decode() and "x" * 11 in htmx.content.decode()  # what was typed stays
    assert _agent_turns(meta.session_id) == []
    assert {r.outcome for r in _rows("session_reply")} == {"error"}


def test_reply_without_owning_is_refused_on_the_page(console, agent_client):
    meta = _waiting()
    response = agent_client.post(_url("session_reply", meta.session_id), {"text": "hi"})
    assert response.status_code == 409
    assert "only the session&#x27;s owner can reply" in response.content.decode()
    handoff_take(session_id=meta.session_id, username="sam", display_name="Sam")
    response = agent_client.post(_url("session_reply", meta.session_id), {"text": "hi"})
    assert response.status_code == 409
    assert _agent_turns(meta.session_id) == []
    assert [r.outcome for r in _rows("session_reply")] == ["error", "error"]
    assert _rows("session_reply")[1].detail["owner"] == "Sam"


def test_viewer_cannot_take_over_or_reply_and_is_audited(console, viewer_client):
    meta = _waiting()
    assert viewer_client.post(_url("session_takeover", meta.session_id)).status_code == 403
    assert viewer_client.post(_url("session_reply", meta.session_id), {"text": "hi"}).status_code == 403
    assert viewer_client.post(_url("session_handback", meta.session_id)).status_code == 403
    assert _meta(meta.session_id).owner is None
    for action in ("session_takeover", "session_reply", "session_handback"):
        (row,) = _rows(action)
        assert (row.actor_username, row.outcome, row.session_id) == ("vera", "denied", meta.session_id)
    # The page offers the Viewer no hand-off buttons.
    body = viewer_client.get(_url("session_detail", meta.session_id)).content.decode()
    assert 'data-handoff-state="waiting"' in body and "takeover-button" not in body


# --- hand back -----------------------------------------------------------------------------------

def test_hand_back_returns_the_session_to_the_bot(console, agent_client):
    meta = _waiting()
    agent_client.post(_url("session_takeover", meta.session_id))
    response = agent_client.post(_url("session_handback", meta.session_id), follow=True)
    assert "Handed back" in response.content.decode()
    stored = _meta(meta.session_id)
    assert handoff_state(stored)["state"] == "bot" and stored.owner is None and stored.status == "active"
    (row,) = _rows("session_handback")
    assert (row.outcome, row.detail["force"], row.detail["owner"]) == ("ok", False, "Ada Okafor")


def test_hand_back_of_someone_elses_session_needs_a_supervisor(console, agent_client, supervisor):
    meta = _waiting()
    handoff_take(session_id=meta.session_id, username="sam", display_name="Sam")
    refused = agent_client.post(_url("session_handback", meta.session_id))
    assert refused.status_code == 409 and "Sam owns this session" in refused.content.decode()
    # An agent may not force it: that is a supervisor's action (403, audited).
    assert agent_client.post(_url("session_handback", meta.session_id), {"force": "1"}).status_code == 403
    assert [(r.actor_username, r.outcome) for r in _rows("session_handback")] == [("ada", "error"), ("ada", "denied")]
    assert _meta(meta.session_id).owner == "sam"

    theirs = _waiting()
    handoff_take(session_id=theirs.session_id, username="ada", display_name="Ada Okafor")
    sup = Client()
    sup.force_login(supervisor)
    body = sup.get(_url("session_detail", theirs.session_id)).content.decode()
    assert "Hand back for Ada Okafor" in body
    response = sup.post(_url("session_handback", theirs.session_id), {"force": "1"})
    assert response.status_code == 302
    assert handoff_state(_meta(theirs.session_id))["state"] == "bot"
    row = _rows("session_handback")[-1]
    assert (row.actor_username, row.outcome, row.detail["force"], row.detail["owner"]) == ("sam", "ok", True, "Ada Okafor")


# --- the queue, the count, "mine" ----------------------------------------------------------------

def test_queue_lists_unowned_hand_offs_oldest_first(console, agent_client):
    first = _waiting(reason="first " + XSS, customer_id="cust-a", channel="line")
    second = _waiting(reason="second", customer_id="cust-b")
    third = _waiting(reason="third", customer_id="cust-c")
    handoff_take(session_id=second.session_id, username="sam", display_name="Sam")
    make_session(turns=1)  # the bot has it: not in the queue
    response = agent_client.get(reverse("dashboard:handoff_queue"))
    assert response.status_code == 200
    body = response.content.decode()
    listed = re.findall(r'<tr data-session-id="([^"]+)"', body)
    assert listed == [first.session_id, third.session_id]
    assert "first &lt;img" in body and XSS not in body
    assert "line · en" in body and "cust-a" in body
    assert body.count("Take over</button>") == 2
    assert _title(body).startswith("(2) Needs a human")


def test_queue_for_a_viewer_has_no_take_over_buttons(console, viewer_client):
    _waiting()
    body = viewer_client.get(reverse("dashboard:handoff_queue")).content.decode()
    assert "Take over</button>" not in body and "customer asks for a person" in body


def test_the_waiting_count_is_in_every_console_title_and_on_the_overview(console, viewer_client, agent_client):
    assert _title(viewer_client.get(reverse("dashboard:session_list")).content.decode()).startswith("Sessions")
    a, b = _waiting(), _waiting()
    for url in (reverse("dashboard:session_list"), reverse("dashboard:overview"), _url("session_detail", a.session_id)):
        body = viewer_client.get(url).content.decode()
        assert _title(body).startswith("(2) "), url
        assert 'data-waiting="2"' in body
    body = viewer_client.get(reverse("dashboard:overview_metrics")).content.decode()
    assert re.search(r'data-metric="handoff-waiting"><a [^>]*>2</a>', body)
    agent_client.post(_url("session_takeover", b.session_id))
    assert _title(viewer_client.get(reverse("dashboard:session_list")).content.decode()).startswith("(1) Sessions")


def test_the_count_is_memoised_for_a_few_seconds(console, viewer_client, monkeypatch):
    monkeypatch.setattr(overview_selectors, "HANDOFF_COUNT_CACHE_SECONDS", 60.0)
    calls = []
    real = overview_selectors.handoff_queue_count
    monkeypatch.setattr(overview_selectors, "handoff_queue_count", lambda: calls.append(1) or real())
    for _ in range(3):
        viewer_client.get(reverse("dashboard:session_list"))
    assert len(calls) == 1


def test_anonymous_pages_count_nothing(console, client, monkeypatch):
    monkeypatch.setattr(overview_selectors, "handoff_queue_count", lambda: pytest.fail("counted for nobody"))
    assert client.get(reverse("login")).status_code == 200


def test_mine_lists_the_sessions_the_user_owns(console, agent_client):
    mine = _waiting()
    other = _waiting()
    _waiting()
    agent_client.post(_url("session_takeover", mine.session_id))
    handoff_take(session_id=other.session_id, username="sam", display_name="Sam")
    body = agent_client.get(reverse("dashboard:session_list"), {"mine": "on"}).content.decode()
    assert mine.session_id in body
    assert other.session_id not in body
    assert body.count('class="session-link"') == 1
    # Combined with another filter, applied to the owned sessions.
    body = agent_client.get(reverse("dashboard:session_list"), {"mine": "on", "channel": "line"}).content.decode()
    assert body.count('class="session-link"') == 0
    # Without "mine" every session is listed.
    assert agent_client.get(reverse("dashboard:session_list")).content.decode().count('class="session-link"') == 3


# --- CSRF ----------------------------------------------------------------------------------------

def test_hand_off_actions_need_the_csrf_token(console, agent):
    meta = _waiting()
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)
    for name, data in (("session_takeover", {}), ("session_reply", {"text": "hi"}), ("session_handback", {})):
        assert client.post(_url(name, meta.session_id), data).status_code == 403, name
    assert _meta(meta.session_id).owner is None
    page = client.get(_url("session_detail", meta.session_id))
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    assert client.post(_url("session_takeover", meta.session_id), {"csrfmiddlewaretoken": token}).status_code == 302
    assert _meta(meta.session_id).owner == "ada"
    # htmx sends the token as a header (base.html's hx-headers).
    response = client.post(_url("session_reply", meta.session_id), {"text": "hi"}, HTTP_X_CSRFTOKEN=token,
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and len(_agent_turns(meta.session_id)) == 1


def test_the_title_leaves_the_count_out_when_dynamodb_does_not_answer(console, viewer_client, monkeypatch):
    from sessions_app.exceptions import StoreUnavailable

    def down():
        raise StoreUnavailable("DynamoDB Query failed: unreachable")

    monkeypatch.setattr(overview_selectors, "handoff_queue_count", down)
    response = viewer_client.get(reverse("dashboard:handoff_queue"))
    assert response.status_code == 200 and _title(response.content.decode()).startswith("Needs a human")
    body = viewer_client.get(reverse("dashboard:overview_metrics")).content.decode()
    assert re.search(r'data-metric="handoff-waiting"><a [^>]*>unknown</a>', body)


def test_mine_is_a_filter_rule(console):
    from dashboard.forms import SessionFilterForm
    from sessions_app.exceptions import InvalidInput
    from sessions_app.selectors.filters import SessionFilter

    with pytest.raises(InvalidInput):
        SessionFilter(owner="ada", online=True)
    with pytest.raises(InvalidInput):
        SessionFilter(owner="")
    assert SessionFilter(owner="ada").as_dict() == {"owner": "ada"}
    form = SessionFilterForm({"mine": "on"})  # nobody signed in: "mine" means nothing
    assert not form.is_valid() and "mine" in form.errors
    form = SessionFilterForm({"mine": "on"}, username="ada")
    assert form.is_valid() and form.session_filter.owner == "ada"
