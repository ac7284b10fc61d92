"""The bot-facing hand-off contract over HTTP, and the race the append's condition settles."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sessions_app import keys
from sessions_app.models import Turn
from sessions_app.selectors import session_get
from sessions_app.services.handoff import handoff_release, handoff_take, staff_reply

from .conftest import error_of, start_session


def _turn(api, session_id, role, text, msg):
    return api.post(f"/sessions/{session_id}/turns", {"role": role, "text": text, "client_msg_id": msg})


def test_hand_off_take_over_pause_the_bot_reply_and_hand_back(api):
    session_id = start_session(api)
    assert _turn(api, session_id, "user", "限定版はありますか？", "u1").status_code == 201
    assert api.get(f"/sessions/{session_id}").json()["handoff"] == {"state": "bot", "owner": None, "since": None,
                                                                     "reason": None}

    asked = api.post(f"/sessions/{session_id}/handoff", {"reason": "customer asks for a person", "note": "VIP"})
    assert asked.status_code == 200, asked.content
    assert asked.json()["status"] == "handed_off"
    waiting = asked.json()["handoff"]
    assert waiting["state"] == "waiting" and waiting["reason"] == "customer asks for a person" and waiting["since"]
    # Idempotent: asking again changes nothing.
    again = api.post(f"/sessions/{session_id}/handoff", {"reason": "another reason"})
    assert again.status_code == 200 and again.json()["handoff"] == waiting
    # Waiting, not owned: the bot may still answer (e.g. "someone is coming").
    assert _turn(api, session_id, "assistant", "担当者におつなぎします", "a1").status_code == 201
    assert api.get(f"/sessions/{session_id}/context").json()["session"]["handoff"]["state"] == "waiting"

    handoff_take(session_id=session_id, username="aiko", display_name="Aiko (support)")
    context = api.get(f"/sessions/{session_id}/context").json()  # read-your-writes: at once
    assert context["session"]["handoff"]["state"] == "human"
    assert context["session"]["handoff"]["owner"] == "Aiko (support)"
    paused = _turn(api, session_id, "assistant", "the bot tries anyway", "a2")
    assert paused.status_code == 409
    error = error_of(paused)
    assert error["code"] == "bot_paused" and error["details"]["owner"] == "Aiko (support)" and error["details"]["since"]
    assert _turn(api, session_id, "user", "まだですか？", "u2").status_code == 201  # the customer still talks

    reply = staff_reply(session_id=session_id, username="aiko", display_name="Aiko (support)", text="お待たせしました")
    turns = api.get(f"/sessions/{session_id}/context").json()["turns"]
    assert turns[-1]["role"] == "agent" and turns[-1]["author"] == "Aiko (support)"
    assert turns[-1]["seq"] == int(reply.turn.seq) == 4
    assert api.post(f"/sessions/{session_id}/turns",
                    {"role": "agent", "text": "forged", "client_msg_id": "x"}).status_code == 400  # not the bot's role

    handoff_release(session_id=session_id, username="aiko")
    assert api.get(f"/sessions/{session_id}/context").json()["session"]["handoff"]["state"] == "bot"
    assert _turn(api, session_id, "assistant", "the bot is back", "a3").status_code == 201


def test_hand_off_errors_name_the_field(api):
    session_id = start_session(api)
    missing = api.post(f"/sessions/{session_id}/handoff", {})
    assert missing.status_code == 400 and error_of(missing)["field"] == "reason"
    blank = api.post(f"/sessions/{session_id}/handoff", {"reason": "   "})
    assert blank.status_code == 400 and error_of(blank)["field"] == "reason"
    assert api.post(f"/sessions/{session_id}/close").status_code == 200
    closed = api.post(f"/sessions/{session_id}/handoff", {"reason": "too late"})
    assert closed.status_code == 409 and error_of(closed)["code"] == "session_closed"
    assert api.post("/sessions/nope-404/handoff", {"reason": "x"}).status_code == 404


def test_a_replayed_bot_turn_from_before_the_takeover_is_still_answered_200(api):
    session_id = start_session(api)
    assert _turn(api, session_id, "assistant", "hello", "a1").status_code == 201
    api.post(f"/sessions/{session_id}/handoff", {"reason": "r"})
    handoff_take(session_id=session_id, username="ken", display_name="Ken")
    replay = _turn(api, session_id, "assistant", "hello", "a1")
    assert replay.status_code == 200 and replay.json()["seq"] == 1


@pytest.mark.slow
def test_bot_replies_racing_a_takeover_land_before_it_or_get_409(live_api, write_key, settings):
    """50 bots keep replying; a staff member takes over while they are at it. Every bot turn
    stored comes before the takeover, every bot's next reply after it is refused."""
    settings.RATE_LIMIT_TURNS = 100_000
    auth = {"Authorization": f"Bearer {write_key}", "Connection": "close"}
    session_id = requests.post(f"{live_api}/sessions", json={"customer_id": "c-race", "channel": "web"},
                               headers=auth, timeout=30).json()["session_id"]
    assert requests.post(f"{live_api}/sessions/{session_id}/handoff", json={"reason": "race"}, headers=auth,
                         timeout=30).status_code == 200
    start = threading.Barrier(51)
    took: dict = {}

    def bot(n: int) -> list[int]:
        stored, k = [], 0
        start.wait()
        while True:
            r = requests.post(f"{live_api}/sessions/{session_id}/turns", headers=auth, timeout=60,
                              json={"role": "assistant", "text": f"bot {n}.{k}", "client_msg_id": f"bot-{n}-{k}"})
            if r.status_code == 201:
                stored.append(r.json()["seq"])
                k += 1
            elif r.status_code == 409 and r.json()["error"]["code"] == "bot_paused":
                return stored
            # otherwise session_locked / write_conflict: contention, the same message is retried

    def take() -> None:
        start.wait()
        while int(session_get(session_id=session_id, consistent=True).turn_count) < 20:
            time.sleep(0.005)
        took["meta"] = handoff_take(session_id=session_id, username="sato", display_name="Sato")

    with ThreadPoolExecutor(max_workers=51) as pool:
        taker = pool.submit(take)
        answers = list(pool.map(bot, range(50)))
        taker.result()
    stored = list(Turn.query(keys.session_pk(session_id), Turn.sk.startswith(keys.TURN_PREFIX), consistent_read=True))
    written = sorted(int(t.seq) for t in stored)
    at_takeover = int(took["meta"].turn_count)
    assert written == list(range(1, len(written) + 1))  # dense: nothing lost or doubled
    assert sorted(seq for seqs in answers for seq in seqs) == written  # every 201 is stored, once
    assert at_takeover >= 20 and len(written) == at_takeover  # no bot turn after the takeover
