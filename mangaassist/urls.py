from django.contrib import admin
from django.urls import include, path, re_path

from sessions_app.api import api
from sessions_app.api.errors import api_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", api.urls),
    # Everything else under /api (any method, /api itself included) is a 404 in the API's shape.
    re_path(r"^api(?:/(?P<path>.*))?$", api_not_found),
    path("", include("dashboard.urls")),
]

handler400 = "sessions_app.api.errors.bad_request"
