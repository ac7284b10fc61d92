from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path, re_path

from sessions_app.api import api
from sessions_app.api.errors import api_not_found
from sessions_app.metrics_views import metrics_view
from sessions_app.probes import healthz, readyz

def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico whatever the page links: send them to the console's icon
    (a temporary redirect: the static file's hashed name changes with its content)."""
    response = HttpResponseRedirect(static("dashboard/favicon.svg"))
    response["Cache-Control"] = "public, max-age=86400"
    return response


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
    path("favicon.ico", favicon, name="favicon"),
    path("", include("dashboard.urls")),
]

# The console's error pages (its layout, navigation and log-out; never Django's debug pages with
# DEBUG off); under /api/ 400 and 500 answer in the API's error shape (dashboard.access).
handler400 = "dashboard.access.bad_request"
handler403 = "dashboard.access.permission_denied"
handler404 = "dashboard.access.page_not_found"
handler500 = "dashboard.access.server_error"
