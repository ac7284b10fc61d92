"""Every error in the one shape: malformed JSON, wrong body types, oversize bodies, a store
outage, and a bug — never an HTML page, never a traceback."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest
from django.test import Client

from sessions_app import dynamo

from .conftest import API, error_of, start_session


@pytest.mark.parametrize("raw", ["{not json", '{"role": "user",', "\xff\xfe", "nul\x00"])
def test_malformed_json_is_400_malformed_json(api, raw):
    response = api.post("/sessions/s1/turns", raw=raw)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "malformed_json" and error["field"] is None


@pytest.mark.parametrize("raw", ["[1, 2]", '"text"', "42", "null"])
def test_a_body_that_is_not_an_object_is_400(api, raw):
    response = api.post("/sessions", raw=raw)
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_input"


def test_missing_body_names_the_first_required_field(api):
    response = api.post("/sessions")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_input"


def test_a_body_over_djangos_upload_limit_is_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    response = api.post("/sessions/s1/turns", {"role": "user", "text": "x" * 2000, "client_msg_id": "m"})
    assert response.status_code == 413 and error_of(response)["code"] == "payload_too_large"


def test_store_unavailable_is_503(api, settings):
    session_id = start_session(api)
    # A real outage: point the app at a port where nothing listens (connection refused).
    endpoint, retries = settings.DYNAMODB_ENDPOINT, settings.DYNAMODB_MAX_RETRIES
    settings.DYNAMODB_ENDPOINT = "http://127.0.0.1:9"
    settings.DYNAMODB_MAX_RETRIES = 0
    dynamo.reset_connections()
    try:
        for response in (
            api.post(f"/sessions/{session_id}/turns", {"role": "user", "text": "x", "client_msg_id": "m-1"}),
            api.get(f"/sessions/{session_id}/context"),
            api.post("/sessions", {"customer_id": "c", "channel": "web"}),
        ):
            assert response.status_code == 503, response.content
            assert error_of(response)["code"] == "store_unavailable"
    finally:
        # Restored here, not by the settings fixture: the ddb fixture's teardown (drop the
        # table) runs first and needs the real endpoint.
        settings.DYNAMODB_ENDPOINT, settings.DYNAMODB_MAX_RETRIES = endpoint, retries
        dynamo.reset_connections()


def test_wrong_method_is_405_in_the_error_shape(api):
    response = api.delete("/sessions")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert sorted(response["Allow"].split(", ")) == ["GET", "POST"]  # start a session, list sessions


def test_unknown_query_parameter_is_400_naming_it(api):
    session_id = start_session(api)
    response = api.get(f"/sessions/{session_id}/context", turn=5)  # typo for "turns"
    assert response.status_code == 400
    assert error_of(response) == {"code": "invalid_input", "message": "unknown query parameter 'turn'", "field": "turn"}
    appended = api.client.post(f"/api/v1/sessions/{session_id}/turns?dry_run=1", '{"role": "user", "text": "x", "client_msg_id": "m"}',
                               content_type="application/json", headers={"Authorization": f"Bearer {api.key}"})
    assert appended.status_code == 400 and error_of(appended)["field"] == "dry_run"
    assert api.get(f"/sessions/{session_id}").json()["turn_count"] == 0


@pytest.mark.parametrize("path", ["/api/v1/nope", "/api/v1/sessions/s1/turns/extra", "/api/v2/sessions"])
def test_unknown_api_urls_are_404_in_the_error_shape(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert error_of(response)["code"] == "not_found"


@pytest.fixture
def csrf_client():
    """A client with Django's CSRF checks on, as every real request has them (the test client
    turns them off by default, which would hide a CSRF page answering an API request)."""
    return Client(enforce_csrf_checks=True)


UNKNOWN_API_PATHS = ["/api/v1/nothing", "/api/v1/sessions/s1/turns/extra", "/api/v2/sessions", "/api/v1/..%2F..%2Fadmin/",
                     "/api/v1/sessions/..%2Fs1", "/api/v1/sessions/", "/api/", "/api"]


@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete", "options"])
@pytest.mark.parametrize("path", UNKNOWN_API_PATHS)
def test_unknown_api_paths_are_json_404_whatever_the_method(csrf_client, method, path):
    response = getattr(csrf_client, method)(path, content_type="application/json")
    assert response.status_code == 404, (response.status_code, response.content[:200])
    assert error_of(response)["code"] == "not_found"


def test_a_request_for_an_unknown_host_is_json_400(csrf_client):
    response = csrf_client.get("/api/v1/sessions", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "bad_request"


def _head_and_get(api, path):
    headers = {"Authorization": f"Bearer {api.key}"}
    return api.client.head(API + path, headers=headers), api.client.get(API + path, headers=headers)


def test_head_on_get_endpoints_answers_like_get_without_a_body(api):
    session_id = start_session(api)
    assert api.put("/connections/conn-1", {"session_id": session_id}).status_code == 200
    for path in (f"/sessions/{session_id}", f"/sessions/{session_id}/context", "/sessions", "/connections/conn-1",
                 "/openapi.json"):
        head, get = _head_and_get(api, path)
        assert (head.status_code, get.status_code) == (200, 200), path
        assert head["Content-Type"] == get["Content-Type"]
        assert int(head["Content-Length"]) == len(get.content) > 0
    head, get = _head_and_get(api, "/sessions/never-started")
    assert head.status_code == get.status_code == 404 and head["Content-Type"] == get["Content-Type"]


def test_head_is_refused_where_get_is(api):
    session_id = start_session(api)
    response = api.client.head(f"{API}/sessions/{session_id}/turns", headers={"Authorization": f"Bearer {api.key}"})
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert api.client.head(f"{API}/sessions/{session_id}").status_code == 401  # no key: as GET would


def test_a_head_answer_carries_no_body_on_the_wire(live_api, write_key):
    """The test client drops HEAD bodies itself; a real server sends what the app returns."""
    url = urlsplit(live_api)
    session = Client().post(f"{API}/sessions", {"customer_id": "c", "channel": "web"}, content_type="application/json",
                            headers={"Authorization": f"Bearer {write_key}"}).json()["session_id"]
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall((f"HEAD {url.path}/sessions/{session} HTTP/1.0\r\nHost: {url.hostname}\r\n"
                      f"Authorization: Bearer {write_key}\r\n\r\n").encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.0 200"), head
    assert body == b""
