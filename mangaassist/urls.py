from django.contrib import admin
from django.urls import include, path, re_path

from sessions_app.api import api
from sessions_app.api.errors import api_not_found
from sessions_app.metrics_views import metrics_view
from sessions_app.probes import healthz, readyz

urlpatterns = [
    # Operations: the load balancer's probes and Prometheus' scrape (docs/operating.md).
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", api.urls),
    # Everything else under /api (any method, /api itself included) is a 404 in the API's shape.
    re_path(r"^api(?:/(?P<path>.*))?$", api_not_found),
    path("", include("dashboard.urls")),
]

handler400 = "sessions_app.api.errors.bad_request"
