"""Request latency by route and status (``mangaassist_http_request_duration_seconds``).

The ``route`` label is the URL pattern that matched (``api/v1/sessions/<str:session_id>/turns``),
never the path itself: a path carries session ids, and a label per session would grow without
bound. Requests no pattern matched are ``unmatched``; static files (served by WhiteNoise, below
this middleware) are ``static``. The probes and the scrape itself are not counted: a load
balancer probing every second would otherwise be most of the traffic the dashboards show.
"""

from __future__ import annotations

import time

from django.conf import settings

from . import metrics

NOT_MEASURED = frozenset({"/metrics", "/healthz", "/readyz"})


class RequestMetricsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.static_prefix = (settings.STATIC_URL or "/static/")

    def __call__(self, request):
        if not metrics.ENABLED or request.path_info in NOT_MEASURED:
            return self.get_response(request)
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        if match is not None and match.route:
            route = match.route
        elif request.path_info.startswith(self.static_prefix):
            route = "static"
        else:
            route = "unmatched"
        method = request.method if request.method in _METHODS else "other"
        metrics.child(metrics.HTTP_REQUEST_SECONDS, route, method, str(response.status_code)).observe(
            time.perf_counter() - started)
        return response


# Methods outside this set are one label value: a client inventing verbs must not add series.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
