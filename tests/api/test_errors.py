"""Every error in the one shape: malformed JSON, wrong body types, oversize bodies, a store
outage, and a bug — never an HTML page, never a traceback."""

from __future__ import annotations

import pytest

from sessions_app import dynamo

from .conftest import error_of, start_session


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
