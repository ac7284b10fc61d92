"""``GET /metrics``: the Prometheus scrape, for a bearer token only.

Unset ``METRICS_TOKEN``: the endpoint does not exist (404), so a deployment that has not chosen
to expose metrics exposes nothing. The token is compared in constant time. The body is every
process's metrics added up (``observability.metrics.exposition``: multiprocess mode reads the
per-process files; a scrape costs one pass over them, no call to DynamoDB or Redis).
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST

from .observability import metrics


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("metrics are disabled (METRICS_TOKEN is unset)")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = JsonResponse({"detail": "a valid 'Authorization: Bearer <METRICS_TOKEN>' header is required",
                                 "field": "Authorization"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    response = HttpResponse(metrics.exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
