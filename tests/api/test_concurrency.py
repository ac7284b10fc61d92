"""Many writers over real HTTP, and read-your-writes through every cache."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from sessions_app import keys
from sessions_app.models import Turn
from sessions_app.selectors import session_get

from .conftest import start_session

WRITERS = 50


@pytest.mark.slow
def test_50_concurrent_appends_over_http_store_exactly_50_turns(live_api, write_key, settings):
    settings.RATE_LIMIT_TURNS = 1000  # the limiter is not under test here; contention is
    auth = {"Authorization": f"Bearer {write_key}"}
    created = requests.post(f"{live_api}/sessions", json={"customer_id": "c1", "channel": "web"}, headers=auth, timeout=30)
    assert created.status_code == 201, created.text
    session_id = created.json()["session_id"]
    url = f"{live_api}/sessions/{session_id}/turns"
    start = threading.Barrier(WRITERS)
    refusals: list[tuple[int, str]] = []

    def writer(n: int) -> dict:
        body = {"role": "user", "text": f"message {n}", "client_msg_id": f"writer-{n}"}
        start.wait()
        while True:
            # A fresh connection per attempt: the test server (Django's WSGIServer) may close a
            # kept-alive socket between requests, which is the harness's behaviour, not the API's.
            response = requests.post(url, json=body, headers={**auth, "Connection": "close"}, timeout=60)
            if response.status_code == 201:
                return response.json()
            # Anything else must be a clean, retryable refusal in the API's error shape.
            assert response.status_code in (409, 429), (response.status_code, response.text)
            refusals.append((response.status_code, response.json()["error"]["code"]))
            time.sleep(float(response.headers.get("Retry-After", "0.02")))

    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        turns = list(pool.map(writer, range(WRITERS)))

    assert sorted(t["seq"] for t in turns) == list(range(1, WRITERS + 1))
    assert {t["client_msg_id"] for t in turns} == {f"writer-{n}" for n in range(WRITERS)}
    for turn in turns:  # each writer got back its own turn
        assert turn["text"] == f"message {turn['client_msg_id'].removeprefix('writer-')}"
    stored = list(Turn.query(keys.session_pk(session_id), Turn.sk.startswith("TURN#"), consistent_read=True))
    assert [int(t.seq) for t in stored] == list(range(1, WRITERS + 1))
    assert len({t.client_msg_id for t in stored}) == WRITERS
    assert session_get(session_id=session_id, consistent=True).turn_count == WRITERS
    assert {code for _, code in refusals} <= {"session_locked", "write_conflict", "rate_limited"}


def test_read_your_writes_200_times_through_the_context_cache(api, settings):
    settings.RATE_LIMIT_TURNS = 1000
    session_id = start_session(api)
    sources = set()
    for n in range(1, 201):
        # Load first, so a cached context exists that the append must not let us read back.
        assert api.get(f"/sessions/{session_id}/context", turns=5).status_code == 200
        appended = api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": f"t{n}", "client_msg_id": f"m-{n}"})
        assert appended.status_code == 201
        seq = appended.json()["seq"]
        # Half the reads pass min_seq (the bot knows its seq), half rely on the server's hint.
        params = {"turns": 5, "min_seq": seq} if n % 2 else {"turns": 5}
        response = api.get(f"/sessions/{session_id}/context", **params)
        assert response.status_code == 200
        body = response.json()
        assert body["turns"][-1]["seq"] == seq == n, (n, body["turns"][-1])
        assert body["turns"][-1]["text"] == f"t{n}"
        assert body["session"]["turn_count"] == n
        sources.add(response["X-Context-Source"])
        # The very next read is the cached copy and must be just as fresh.
        again = api.get(f"/sessions/{session_id}/context", turns=5)
        assert again["X-Context-Source"] == "redis" and again.json()["turns"][-1]["seq"] == n
