"""One error shape for every 4xx/5xx the API answers:

    {"error": {"code": "session_closed", "message": "...", "field": "session_id" | null}}

(plus ``details`` when there is more to say, e.g. every field a validation error names). The
project's exceptions carry ``code``/``http_status``/``field`` (sessions_app/exceptions.py);
ninja's own errors (validation, unparsable body, authentication) are rewritten into the same
shape here, so a client needs exactly one error parser.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, JsonResponse
from django.views import defaults
from django.views.decorators.csrf import csrf_exempt
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, AuthorizationError, HttpError, ValidationError
from pynamodb.exceptions import PynamoDBException

from ..exceptions import InvalidInput, MangaAssistError, RateLimited
from ..realtime import RateDecision

log = logging.getLogger(__name__)

# Where ninja says a value came from; the client wants the field's own name, not ours.
_SOURCES = {"body", "query", "path", "header", "cookie", "form", "file"}
_PAYLOAD_PARAM = "payload"  # every body parameter in this API is named so (see sessions.py)

_HTTP_ERROR_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    429: "rate_limited",
}


def error_status(exc: MangaAssistError) -> tuple[int, str]:
    """The status and code a project error answers with. One refinement of the exception's own:
    an ``InvalidInput`` that names the size limit it broke (``limit``, e.g. a turn's text over
    TURN_TEXT_MAX_BYTES) is a payload too large — 413 ``payload_too_large``, like a body over
    Django's upload limit — so the append's declared 413 is what an oversize text gets, and a
    client can tell "too big, send less" from "malformed, fix it"."""
    if isinstance(exc, InvalidInput) and "limit" in exc.details:
        return 413, _HTTP_ERROR_CODES[413]
    return exc.http_status, exc.code


def error_body(*, code: str, message: str, field: str | None = None, details: dict | None = None) -> dict:
    error: dict[str, Any] = {"code": code, "message": message, "field": field}
    if details:
        error["details"] = details
    return {"error": error}


def _field_of(loc: tuple | list) -> str | None:
    """("body", "payload", "tags", 3) → "tags.3"; ("query", "turns") → "turns"."""
    parts = [str(p) for p in loc]
    if parts and parts[0] in _SOURCES:
        parts = parts[1:]
    if parts and parts[0] == _PAYLOAD_PARAM:
        parts = parts[1:]
    return ".".join(parts) or None


def _validation_message(error: dict) -> str:
    field = _field_of(error.get("loc", ()))
    if error.get("type") == "missing" and field:
        return f"{field} is required"
    if error.get("type") == "extra_forbidden" and field:
        return f"{field} is not a known field"
    if field is None and error.get("type") in {"model_type", "dict_type", "model_attributes_type"}:
        return "the request body must be a JSON object"
    return f"{field}: {error.get('msg')}" if field else str(error.get("msg"))


def _respond(api: NinjaAPI, request: HttpRequest, *, status: int, body: dict, headers: dict | None = None) -> HttpResponse:
    response = api.create_response(request, body, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def json_method_not_allowed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Wrap a URL's view so its 405 (wrong method) answer uses the error shape; keeps ``Allow``."""

    @functools.wraps(view)  # also keeps ninja's csrf_exempt flag
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = view(request, *args, **kwargs)
        if not isinstance(response, HttpResponseNotAllowed):
            return response
        body = error_body(code="method_not_allowed", message=f"{request.method} is not allowed here; allowed: {response['Allow']}")
        answer = HttpResponse(json.dumps(body), status=405, content_type="application/json")
        answer["Allow"] = response["Allow"]
        return answer

    return wrapper


def errors_install(api: NinjaAPI) -> None:
    """Register the handlers on ``api`` (replacing ninja's defaults)."""

    @api.exception_handler(MangaAssistError)
    def project_error(request: HttpRequest, exc: MangaAssistError) -> HttpResponse:
        details = {k: v for k, v in exc.details.items() if isinstance(v, (str, int, float, bool))}
        headers = None
        if isinstance(exc, RateLimited):
            decision = RateDecision(allowed=False, limit=exc.limit, remaining=exc.remaining,
                                    reset_seconds=exc.reset_seconds, retry_after=exc.retry_after)
            headers = decision.headers()
        status, code = error_status(exc)
        if status >= 500:
            log.warning("api %s %s answered %s: %s", request.method, request.path, status, exc.message)
        body = error_body(code=code, message=exc.message, field=exc.field, details=details or None)
        return _respond(api, request, status=status, body=body, headers=headers)

    @api.exception_handler(ValidationError)
    def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
        problems = [{"field": _field_of(e.get("loc", ())), "message": _validation_message(e)} for e in exc.errors]
        first = problems[0] if problems else {"field": None, "message": "invalid request"}
        body = error_body(code=InvalidInput.code, message=first["message"], field=first["field"],
                          details={"errors": problems} if len(problems) > 1 else None)
        return _respond(api, request, status=400, body=body)

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        status, code, message, headers = exc.status_code, _HTTP_ERROR_CODES.get(exc.status_code, "error"), exc.message, None
        if status == 400 and message.startswith("Cannot parse request body"):
            code, message = "malformed_json", "the request body is not valid JSON"
        elif isinstance(exc, AuthenticationError):
            message = "a valid API key is required: Authorization: Bearer <key>"
            headers = {"WWW-Authenticate": 'Bearer realm="mangaassist"'}
        elif isinstance(exc, AuthorizationError) and message == "Forbidden":
            message = "this API key may not use this endpoint"
        return _respond(api, request, status=status, body=error_body(code=code, message=message), headers=headers)

    @api.exception_handler(RequestDataTooBig)
    def body_too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        # Django refuses to read a body over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default);
        # turn texts are capped far lower (TURN_TEXT_MAX_BYTES), which turn_validate reports.
        return _respond(api, request, status=413, body=error_body(code="payload_too_large", message="the request body is too large"))

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return _respond(api, request, status=404, body=error_body(code="not_found", message="not found"))

    @api.exception_handler(PynamoDBException)
    def store_error(request: HttpRequest, exc: PynamoDBException) -> HttpResponse:
        # Connection failures already arrive as StoreUnavailable (sessions_app.dynamo); what is
        # left is DynamoDB refusing the request (throttling, internal errors). Retrying is the
        # client's only remedy for those, so 503 — logged with the traceback in case it is ours.
        log.exception("api %s %s: DynamoDB error %s", request.method, request.path, getattr(exc, "cause_response_code", None))
        body = error_body(code="store_unavailable", message="the session store is unavailable; retry shortly")
        return _respond(api, request, status=503, body=body, headers={"Retry-After": "1"})

    @api.exception_handler(Exception)
    def unexpected(request: HttpRequest, exc: Exception) -> HttpResponse:
        # A bug: keep the body in the API's shape (never an HTML page or a traceback) and log it.
        log.exception("api %s %s failed", request.method, request.path)
        return _respond(api, request, status=500, body=error_body(code="internal_error", message="internal error"))


@csrf_exempt  # whatever the method: the API authenticates by bearer key, never by cookie
def api_not_found(request: HttpRequest, path: str = "") -> HttpResponse:
    """Unknown URLs under the API answer in the API's error shape, not with an HTML page —
    also to POST, PUT and DELETE, which Django's CSRF check would otherwise answer first."""
    return JsonResponse(error_body(code="not_found", message=f"no API endpoint at {request.path}"), status=404)


def is_api_path(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The project's 400 view (``handler400``): Django answers with it before any view runs, e.g.
    for a Host header not in ALLOWED_HOSTS. Under the API in the error shape, elsewhere Django's."""
    if is_api_path(request.path):
        return JsonResponse(error_body(code="bad_request", message="bad request"), status=400)
    return defaults.bad_request(request, exception)
