"""The live console's server side: the queue's and the session list's live regions (the partials
live-list.js swaps in), staff presence on the detail page (its 20 s ping), and "Deliver again" of
a staff reply — on a real DynamoDB Local table and Redis. The browser side:
tests/e2e/test_live_queue_browser.py."""

from __future__ import annotations

import json
import re

import pytest
from django.test import Client
from django.urls import reverse

from devtools import procs
from sessions_app import keys
from sessions_app.models import AuditLog, Turn
from sessions_app.selectors import overview as overview_selectors
from sessions_app.services.handoff import handoff_request, handoff_take, staff_reply
from tests.builders import make_session
from tests.fixtures.celery_workers import use_broker
from tests.fixtures.staff import staff_user
from tests.realtime.conftest import own_redis  # noqa: F401  (the fixture: a Redis this test may kill)

XSS = '<img src=x onerror="alert(1)">'


# The title's count, recounted on every page (no 5 s memo).
pytestmark = pytest.mark.usefixtures("fresh_count")


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _waiting(reason: str = "customer asks for a person", **kwargs):
    meta = make_session(turns=2, **kwargs)
    handoff_request(session_id=meta.session_id, reason=reason)
    return meta


def _listed(body: str) -> list[str]:
    return re.findall(r'<tr data-session-id="([^"]+)"', body)


def _count(body: str) -> str | None:
    match = re.search(r'data-queue-count="([^"]*)"', body)
    return match.group(1) if match else None


def _rows(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("id"))


def _reply(*, owner: str = "ada", name: str = "Ada Okafor", text: str = "on my way") -> tuple[str, int]:
    meta = _waiting()
    handoff_take(session_id=meta.session_id, username=owner, display_name=name)
    result = staff_reply(session_id=meta.session_id, username=owner, display_name=name, text=text)
    return meta.session_id, int(result.turn.seq)


def _turn(session_id: str, seq: int) -> Turn:
    return Turn.get(keys.session_pk(session_id), keys.turn_sk(seq), consistent_read=True)


def _redeliver_url(session_id: str, seq: int) -> str:
    return reverse("dashboard:session_redeliver", args=[session_id, seq])


# --- access ---------------------------------------------------------------------------------------

def _partials(session_id: str) -> list[tuple[str, str]]:
    return [("get", reverse("dashboard:handoff_queue_rows")), ("get", reverse("dashboard:session_list_rows")),
            ("get", reverse("dashboard:session_viewing", args=[session_id])),
            ("post", reverse("dashboard:session_viewing", args=[session_id]))]


def test_the_partials_need_a_login_and_the_view_permission(console, client):
    meta = make_session(turns=1)
    for method, url in _partials(meta.session_id):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/?next="), url
    client.force_login(staff_user(username="nobody", group=None))
    for method, url in _partials(meta.session_id):
        assert getattr(client, method)(url).status_code == 403, url
    client.force_login(staff_user(username="outsider", group="Supervisor", is_staff=False))
    for method, url in _partials(meta.session_id):
        assert getattr(client, method)(url).status_code == 403, url


def test_a_viewer_gets_every_partial(console, viewer_client):
    meta = make_session(turns=1)
    for method, url in _partials(meta.session_id):
        assert getattr(viewer_client, method)(url).status_code == 200, url


def test_the_viewing_ping_of_a_session_that_does_not_exist_is_a_404_and_leaves_no_mark(console, viewer_client,
                                                                                     redis_client):
    response = viewer_client.post(reverse("dashboard:session_viewing", args=["no-such-session"]))
    assert response.status_code == 404
    assert redis_client.keys("*no-such-session*") == []


# --- the queue's live region ----------------------------------------------------------------------

def test_the_queue_region_lists_the_waiting_with_the_title_count(console, agent_client, viewer_client):
    first = _waiting(reason="first " + XSS)
    second = _waiting(reason="second")
    make_session(turns=1)  # the bot has it
    body = agent_client.get(reverse("dashboard:handoff_queue_rows")).content.decode()
    assert body.lstrip().startswith("<div id=\"queue-region\"") and "<html" not in body
    assert _listed(body) == [first.session_id, second.session_id]
    assert _count(body) == "2" and '<b id="queue-waiting">2</b> waiting' in body
    assert "first &lt;img" in body and XSS not in body
    assert body.count("Take over</button>") == 2 and "csrfmiddlewaretoken" in body
    assert "Take over</button>" not in viewer_client.get(reverse("dashboard:handoff_queue_rows")).content.decode()

    handoff_take(session_id=first.session_id, username="sam", display_name="Sam")
    body = viewer_client.get(reverse("dashboard:handoff_queue_rows")).content.decode()
    assert _listed(body) == [second.session_id] and _count(body) == "1"


def test_the_queue_page_carries_its_live_region_and_the_activity_stream(console, viewer_client, settings):
    settings.SSE_ORIGIN = "http://sse.example:8001"
    meta = _waiting()
    body = viewer_client.get(reverse("dashboard:handoff_queue")).content.decode()
    assert 'id="queue-region"' in body and _listed(body) == [meta.session_id]
    live = re.search(r'<div id="live-list"[^>]*>', body).group(0)
    assert 'data-events-url="http://sse.example:8001/events/activity"' in live
    assert f'data-rows-url="{reverse("dashboard:handoff_queue_rows")}"' in live and 'data-region="#queue-region"' in live
    kinds = re.search(r'data-kinds="([^"]+)"', live).group(1).split()
    assert {"handed_off", "taken_over", "handed_back", "closed", "started"} <= set(kinds)
    assert "dashboard/live-list.js" in body


def test_the_queue_count_is_every_shards_count_when_the_page_is_full(console, viewer_client, monkeypatch):
    from dashboard import views

    monkeypatch.setattr(views, "QUEUE_PAGE", 2)
    for _ in range(3):
        _waiting()
    body = viewer_client.get(reverse("dashboard:handoff_queue_rows")).content.decode()
    assert len(_listed(body)) == 2 and _count(body) == "3"
    assert "Only the 2 longest waiting are listed" in body


# --- the session list's live region ---------------------------------------------------------------

def test_the_session_list_region_follows_the_filter_and_says_the_count(console, viewer_client):
    web = make_session(channel="web", turns=1)
    line = make_session(channel="line", turns=1)
    _waiting(channel="line")
    page = viewer_client.get(reverse("dashboard:session_list"), {"channel": "line"}).content.decode()
    rows_url = re.search(r'data-rows-url="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert rows_url.startswith(reverse("dashboard:session_list_rows")) and "channel=line" in rows_url
    body = viewer_client.get(rows_url).content.decode()
    assert body.lstrip().startswith('<div id="session-list-region"') and "<html" not in body
    listed = _listed(body)
    assert line.session_id in listed and web.session_id not in listed and len(listed) == 2
    assert _count(body) == "1" and 'class="pager"' in body

    newer = make_session(channel="line", turns=0)  # started since: the next refresh shows it first
    assert _listed(viewer_client.get(rows_url).content.decode())[0] == newer.session_id


def test_the_session_list_region_refuses_a_bad_filter(console, viewer_client):
    response = viewer_client.get(reverse("dashboard:session_list_rows"), {"day_from": "2026-11-21", "day_to": "2026-11-20"},
                                 HTTP_HX_REQUEST="true")
    assert response.status_code == 400


def test_the_session_list_page_has_no_live_region_for_a_bad_filter(console, viewer_client):
    response = viewer_client.get(reverse("dashboard:session_list"), {"day_from": "2026-11-21", "day_to": "2026-11-20"})
    assert response.status_code == 400 and 'id="live-list"' not in response.content.decode()


# --- staff presence -------------------------------------------------------------------------------

def _viewers(body: str) -> list[str]:
    return re.findall(r'<li class="viewer" data-username="([^"]+)"', body)


def test_two_staff_on_one_session_see_each_other_and_the_owner(console, agent_client, supervisor):
    meta = _waiting()
    sam = _client(supervisor)
    page = agent_client.get(reverse("dashboard:session_detail", args=[meta.session_id])).content.decode()
    assert _viewers(page) == ["ada"] and "(you)" in page
    panel = re.search(r'<section class="card staff-viewing" id="staff-viewing"[^>]*>', page).group(0)
    assert f'hx-post="{reverse("dashboard:session_viewing", args=[meta.session_id])}"' in panel
    assert 'hx-trigger="every 20s"' in panel

    body = sam.post(reverse("dashboard:session_viewing", args=[meta.session_id])).content.decode()
    assert _viewers(body) == ["sam", "ada"]  # most recent first
    assert 'class="viewing-owner">nobody' in body and "Someone else has this page open" in body

    agent_client.post(reverse("dashboard:session_takeover", args=[meta.session_id]))
    body = sam.get(reverse("dashboard:session_viewing", args=[meta.session_id])).content.decode()
    assert "<b>Ada Okafor</b>" in body and re.search(r'data-username="ada">ada .*?>owner</span>', body)
    body = agent_client.post(reverse("dashboard:session_viewing", args=[meta.session_id])).content.decode()
    assert _viewers(body) == ["ada", "sam"] and "<b>Ada Okafor</b> (you)" in body


def test_a_viewer_alone_sees_only_themselves(console, viewer_client):
    meta = make_session(turns=1)
    body = viewer_client.post(reverse("dashboard:session_viewing", args=[meta.session_id])).content.decode()
    assert _viewers(body) == ["vera"] and "Someone else" not in body and 'data-viewers="1"' in body


def test_with_redis_down_who_is_viewing_is_unknown_never_nobody(console, own_redis, viewer_client):  # noqa: F811
    meta = make_session(turns=1)
    own_redis.kill()
    response = viewer_client.post(reverse("dashboard:session_viewing", args=[meta.session_id]))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'data-viewers="unknown"' in body and "unknown (Redis unavailable)" in body and "nobody</li>" not in body
    assert 'class="viewing-owner">nobody' in body  # the owner comes from DynamoDB


# --- deliver again --------------------------------------------------------------------------------

def test_deliver_again_is_offered_for_failed_not_configured_and_not_queued_replies_only(console, agent_client,
                                                                                      viewer_client, settings):
    settings.BOT_WEBHOOK_URL = None
    session_id, seq = _reply()
    url = reverse("dashboard:session_detail", args=[session_id])
    turn = _turn(session_id, seq)
    assert turn.delivery_state == "not_configured"
    assert f'action="{_redeliver_url(session_id, seq)}"' in agent_client.get(url).content.decode()
    assert "Deliver again" not in viewer_client.get(url).content.decode()  # a Viewer cannot

    offered = {}
    for state, error in (("failed", "HTTP 502"), ("pending", "not queued: broker down"), ("pending", None),
                         ("delivered", None)):
        actions = [Turn.delivery_state.set(state)]
        actions.append(Turn.delivery_error.set(error) if error else Turn.delivery_error.remove())
        turn.update(actions=actions)
        offered[(state, error)] = "Deliver again" in agent_client.get(url).content.decode()
    assert offered == {("failed", "HTTP 502"): True, ("pending", "not queued: broker down"): True,
                       ("pending", None): False, ("delivered", None): False}
    # Also in the timeline's own partial (what live.js swaps in).
    turn.update(actions=[Turn.delivery_state.set("failed")])
    turns = agent_client.get(reverse("dashboard:session_turns", args=[session_id])).content.decode()
    assert "Deliver again" in turns


def test_deliver_again_without_a_webhook_stays_not_configured_then_with_one_is_queued(console, agent_client, settings,
                                                                                    broker, broker_redis):
    settings.BOT_WEBHOOK_URL = None
    session_id, seq = _reply()
    assert _turn(session_id, seq).delivery_state == "not_configured"

    response = agent_client.post(_redeliver_url(session_id, seq), HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200 and body.lstrip().startswith(f'<li class="turn role-agent" id="turn-{seq}"')
    assert 'data-delivery="not_configured"' in body and 'data-outcome="ok"' in body
    assert "no bot webhook is configured" in body
    assert broker_redis.llen("celery") == 0
    (row,) = _rows("session_redeliver")
    assert (row.actor_username, row.outcome, row.session_id, row.customer_id) == ("ada", "ok", session_id, "cust-1")
    assert row.detail == {"seq": seq, "state": "not_configured"}

    # A webhook now (unreachable: no worker runs here, the task only waits on the broker).
    settings.BOT_WEBHOOK_URL = f"http://127.0.0.1:{procs.free_port()}/hook"
    settings.BOT_WEBHOOK_SECRET = "whsec-test-" + "y" * 24
    body = agent_client.post(_redeliver_url(session_id, seq), HTTP_HX_REQUEST="true").content.decode()
    assert 'data-delivery="pending"' in body and "Delivery requested again." in body and "Deliver again" not in body
    turn = _turn(session_id, seq)
    assert (turn.delivery_state, int(turn.delivery_attempts), turn.delivery_error) == ("pending", 0, None)
    [message] = [json.loads(m)["headers"] for m in broker_redis.lrange("celery", 0, -1)]
    assert message["task"] == "sessions_app.webhook_deliver"
    assert [r.detail["state"] for r in _rows("session_redeliver")] == ["not_configured", "pending"]


def test_deliver_again_with_the_broker_down_says_not_queued_and_offers_it_again(console, agent_client, settings,
                                                                              broker, broker_redis):
    settings.BOT_WEBHOOK_URL = f"http://127.0.0.1:{procs.free_port()}/hook"
    settings.BOT_WEBHOOK_SECRET = "whsec-test-" + "y" * 24
    session_id, seq = _reply()
    _turn(session_id, seq).update(actions=[Turn.delivery_state.set("failed"), Turn.delivery_error.set("HTTP 500")])
    use_broker(f"redis://127.0.0.1:{procs.free_port()}/1")  # nothing listens there
    try:
        body = agent_client.post(_redeliver_url(session_id, seq), HTTP_HX_REQUEST="true").content.decode()
    finally:
        use_broker(None)
    assert 'data-delivery="pending"' in body and "not queued: " in body and "Deliver again" in body


def test_a_plain_post_redirects_to_the_turn_with_a_message(console, agent_client, settings):
    settings.BOT_WEBHOOK_URL = None
    session_id, seq = _reply()
    response = agent_client.post(_redeliver_url(session_id, seq))
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:session_detail", args=[session_id]) + f"#turn-{seq}"
    assert "no bot webhook is configured" in agent_client.get(response["Location"]).content.decode()


def test_deliver_again_needs_handle_post_and_csrf(console, viewer_client, agent, settings):
    settings.BOT_WEBHOOK_URL = None
    session_id, seq = _reply()
    url = _redeliver_url(session_id, seq)
    assert viewer_client.post(url).status_code == 403
    (denied,) = _rows("session_redeliver")
    assert (denied.actor_username, denied.outcome) == ("vera", "denied")
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(agent)
    assert strict.post(url).status_code == 403
    assert strict.get(url).status_code == 405
    assert len(_rows("session_redeliver")) == 1  # neither reached the action


def test_deliver_again_of_a_turn_that_is_no_staff_reply_is_refused_and_audited(console, agent_client, settings):
    settings.BOT_WEBHOOK_URL = None
    session_id, seq = _reply()
    body = agent_client.post(_redeliver_url(session_id, 1), HTTP_HX_REQUEST="true").content.decode()
    assert 'id="turn-1"' in body and 'data-outcome="refused"' in body and "is not a staff reply" in body
    response = agent_client.post(_redeliver_url(session_id, seq + 40), HTTP_HX_REQUEST="true")
    assert response.status_code == 400
    assert [r.outcome for r in _rows("session_redeliver")] == ["error", "error"]
    assert all(r.detail["error"].startswith("invalid_input:") for r in _rows("session_redeliver"))
    missing = agent_client.post(_redeliver_url("no-such-session", 1))
    assert missing.status_code == 404
