"""Redis killed mid-test: chat keeps working, presence is unknown, the connection mapping
(Redis's alone) answers 503; Redis back → everything resumes without restarting Django."""

from __future__ import annotations

from .conftest import error_of, start_session


def append(api, session_id: str, n: int):
    return api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": f"t{n}", "client_msg_id": f"m-{n}"})


def test_redis_killed_and_restarted(api, own_redis):
    session_id = start_session(api)
    assert append(api, session_id, 1).status_code == 201
    assert api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "c1"}).json()["state"] == "online"
    assert api.put("/connections/c1", {"session_id": session_id}).status_code == 200
    assert api.get(f"/sessions/{session_id}/context").status_code == 200  # now cached in Redis

    own_redis.kill()

    for n in (2, 3, 4):
        response = append(api, session_id, n)
        assert response.status_code == 201 and response.json()["seq"] == n
        # A quota that could not be checked is not advertised.
        assert "X-RateLimit-Remaining" not in response
        context = api.get(f"/sessions/{session_id}/context")
        # No hint without Redis, so the read is strongly consistent, and the header says so.
        assert context.status_code == 200 and context["X-Context-Source"] == "dynamodb-consistent"
        assert context.json()["turns"][-1]["seq"] == n
    assert append(api, session_id, 3).status_code == 200  # replays still answered from the store

    heartbeat = api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "c1"})
    assert heartbeat.status_code == 200 and heartbeat.json() == {"session_id": session_id, "state": "unknown", "connection_id": None}
    for response in (api.put("/connections/c2", {"session_id": session_id}), api.get("/connections/c1"), api.delete("/connections/c1")):
        assert response.status_code == 503
        error = error_of(response)
        assert error["code"] == "redis_unavailable" and "Redis" in error["message"]

    own_redis.start()

    response = append(api, session_id, 5)
    assert response.status_code == 201 and response.json()["seq"] == 5
    assert response["X-RateLimit-Remaining"].isdigit()
    first, second = api.get(f"/sessions/{session_id}/context"), api.get(f"/sessions/{session_id}/context")
    assert first.json()["turns"][-1]["seq"] == 5 and second["X-Context-Source"] == "redis"
    assert second.json()["turns"][-1]["seq"] == 5
    assert api.post(f"/sessions/{session_id}/heartbeat", {"connection_id": "c1"}).json()["state"] == "online"
    assert api.put("/connections/c2", {"session_id": session_id}).status_code == 200
    assert api.get("/connections/c2").json()["session_id"] == session_id
    assert api.delete("/connections/c2").status_code == 204
