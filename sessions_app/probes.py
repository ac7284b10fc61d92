"""The load balancer's and the orchestrator's probes (routed in mangaassist/urls.py).

``/healthz``: liveness. The process is up and Django answers; no dependency is touched, so an
outage of DynamoDB or Redis never gets healthy processes restarted.

``/readyz``: readiness. 200 while DynamoDB answers (``ready``, or ``degraded`` when Redis, DAX or
the broker does not: the product works without them), 503 when it does not, so the target is
taken out of rotation. The checks and their cost are in ``sessions_app.selectors.readiness``.

No login (load balancers have no session), no CSRF (nothing changes state; exempt so that a
POST gets the JSON 405 instead of the CSRF failure page), never cached by a proxy.
"""

from __future__ import annotations

from functools import wraps

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from .selectors.readiness import Check, readiness_check

_METHODS = ("GET", "HEAD")


def _json(body: dict, *, status: int = 200) -> JsonResponse:
    response = JsonResponse(body, status=status)
    # A cached answer from an intermediary would report a state that no longer holds.
    response["Cache-Control"] = "no-store"
    return response


def _probe(view):
    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if request.method not in _METHODS:
            # The API's error shape (sessions_app/api/errors.py), so one parser reads both.
            response = _json({"error": {"code": "method_not_allowed", "message": "use GET or HEAD", "field": None}},
                             status=405)
            response["Allow"] = ", ".join(_METHODS)
            return response
        return view(request, *args, **kwargs)

    return wrapper


@_probe
def healthz(request: HttpRequest) -> JsonResponse:
    return _json({"status": "ok"})


def _check_dict(check: Check) -> dict:
    return {"status": check.status, "ms": check.ms, "error": check.error, **check.detail}


@_probe
def readyz(request: HttpRequest) -> JsonResponse:
    readiness = readiness_check()
    body = {"status": readiness.status, "checks": {name: _check_dict(c) for name, c in readiness.checks.items()}}
    return _json(body, status=200 if readiness.ready else 503)


class ProbeMiddleware:
    """Answers the two probes before any other middleware (first in ``MIDDLEWARE``).

    An ALB health check connects to the target's own address over plain HTTP and cannot set a
    Host header: Django's host validation (``ALLOWED_HOSTS``, read by CommonMiddleware) would
    answer it 400 and the HTTPS redirect 301, and the target would never become healthy. The
    probes reveal nothing that depends on the host or the scheme, so they skip both; every other
    path gets the full stack."""

    VIEWS = {"/healthz": healthz, "/readyz": readyz}

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        view = self.VIEWS.get(request.path_info)
        return view(request) if view is not None else self.get_response(request)
