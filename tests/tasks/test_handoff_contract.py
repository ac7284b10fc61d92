"""The whole hand-off contract over HTTP, end to end: the bot's API calls, a staff member's
console actions, the signed webhook reaching a real receiver through a real Celery worker."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from sessions_app.services.api_keys import api_key_create
from tests.fixtures.celery_workers import wait_for
from tests.fixtures.staff import staff_user

from .test_webhook_delivery import receiver, state_is, verify, webhook  # noqa: F401 — fixtures

API = "/api/v1"


@pytest.mark.django_db(transaction=True)
def test_hand_off_take_over_pause_reply_webhook_hand_back(worker, webhook, redis_client):  # noqa: F811
    bot = Client(headers={"Authorization": f"Bearer {api_key_create(name='bot', scope='write')[1]}"})

    def post(path, body=None):
        return bot.post(API + path, json.dumps(body or {}), content_type="application/json")

    def turn(session_id, role, text, msg):
        return post(f"/sessions/{session_id}/turns", {"role": role, "text": text, "client_msg_id": msg})

    session_id = post("/sessions", {"customer_id": "cust-e2e", "channel": "line"}).json()["session_id"]
    assert turn(session_id, "user", "人と話したい", "u1").status_code == 201
    assert post(f"/sessions/{session_id}/handoff", {"reason": "customer asked for a person"}).status_code == 200

    from django.contrib.auth.models import Group, Permission

    agents, _ = Group.objects.get_or_create(name="Agent")
    agents.permissions.set(Permission.objects.filter(codename__in=["view_chat_sessions", "handle_chat_sessions"]))
    agent = staff_user(username="mika", group="Agent")
    agent.first_name, agent.last_name = "Mika", "Ito"
    agent.save()
    console = Client(enforce_csrf_checks=False)
    console.force_login(agent)
    assert console.post(f"/sessions/{session_id}/takeover/").status_code in (200, 302)

    context = bot.get(f"{API}/sessions/{session_id}/context").json()
    assert context["session"]["handoff"]["state"] == "human" and context["session"]["handoff"]["owner"] == "Mika Ito"
    paused = turn(session_id, "assistant", "bot reply", "a1")
    assert paused.status_code == 409 and paused.json()["error"]["code"] == "bot_paused"
    assert turn(session_id, "user", "まだですか", "u2").status_code == 201

    assert console.post(f"/sessions/{session_id}/reply/", {"text": "お待たせしました、Mikaです"}).status_code in (200, 302)
    wait_for(state_is(session_id, 3, "delivered"), what="the staff reply to reach the webhook")
    (request,) = webhook.received()
    body = verify(request)  # the documented signature
    assert body == {**body, "type": "staff_reply", "session_id": session_id, "seq": 3, "role": "agent",
                    "author": "Mika Ito", "text": "お待たせしました、Mikaです", "idempotency_key": f"{session_id}:3"}

    assert console.post(f"/sessions/{session_id}/handback/").status_code in (200, 302)
    assert bot.get(f"{API}/sessions/{session_id}/context").json()["session"]["handoff"]["state"] == "bot"
    assert turn(session_id, "assistant", "bot is back", "a2").status_code == 201
