"""The OpenAPI document as clients and /api/v1/docs read it: every operation has an id and a summary
written by hand (a client generator makes method names of the ids, the docs list the summaries),
and the docs page is served from this origin's static files only."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from ninja import NinjaAPI

from sessions_app.api import api

SNAKE_CASE = re.compile(r"[a-z]+(?:_[a-z]+)*")
METHODS = {"get", "put", "post", "delete", "patch"}


def _document_operations() -> list[tuple[str, str, dict]]:
    document = Client().get("/api/v1/openapi.json").json()
    return [(method.upper(), path, operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS]


def _ninja_operations() -> list:
    return [operation for _prefix, router in api._routers for view in router.path_operations.values()
            for operation in view.operations]


def test_every_operation_declares_its_id_and_summary_by_hand():
    operations = _ninja_operations()
    assert len(operations) == len(_document_operations()) >= 12
    for operation in operations:
        name = operation.view_func.__name__
        # What ninja would have made of the function: "sessions_app_api_sessions_turn_append_view",
        # "Turn Append View".
        generated_id = NinjaAPI.get_openapi_operation_id(api, operation)
        generated_summary = name.title().replace("_", " ")
        assert operation.operation_id is not None and operation.operation_id != generated_id, name
        assert operation.summary != generated_summary and not operation.summary.endswith(" View"), name


def test_the_document_carries_unique_snake_case_ids_and_a_summary_for_every_operation():
    operations = _document_operations()
    ids = [operation["operationId"] for _method, _path, operation in operations]
    assert len(ids) == len(set(ids)), ids
    assert all(SNAKE_CASE.fullmatch(i) for i in ids), ids
    for method, path, operation in operations:
        summary = operation.get("summary") or ""
        assert summary and summary[0].isupper() and not summary.endswith("."), (method, path, summary)
    by_id = {operation["operationId"]: (method, path) for method, path, operation in operations}
    # Stable names a generated client already calls.
    assert by_id["turn_append"] == ("POST", "/api/v1/sessions/{session_id}/turns")
    assert by_id["session_list"] == ("GET", "/api/v1/sessions")
    assert by_id["presence_heartbeat"] == ("POST", "/api/v1/sessions/{session_id}/heartbeat")


def test_the_append_operation_declares_413_for_an_oversize_text():
    append = next(o for _m, _p, o in _document_operations() if o["operationId"] == "turn_append")
    assert "413" in append["responses"]
    assert append["responses"]["413"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
    # The text field says where the limit is, and that it is a 413 when passed.
    assert "413" in append["description"]


def test_the_docs_page_names_only_this_origins_static_files():
    response = Client().get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower() and "//" not in re.sub(r"<!DOCTYPE[^>]*>", "", html)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert "/static/ninja/swagger-ui-bundle.js" in assets and "/static/ninja/swagger-ui.css" in assets
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), f"{asset} is not among the static files"
    # The Swagger settings turn the validator badge (an image from validator.swagger.io) off.
    assert '"validatorUrl": null' in html
    assert "script-src 'self'" in response["Content-Security-Policy"]


@pytest.mark.parametrize("path", ["/api/v1/docs", "/api/v1/openapi.json"])
def test_the_docs_need_no_api_key(path):
    assert Client().get(path).status_code == 200
