from django.contrib import admin
from django.urls import include, path, re_path

from sessions_app.api import api
from sessions_app.api.errors import api_not_found

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", api.urls),
    re_path(r"^api/(?P<path>.*)$", api_not_found),
    path("", include("dashboard.urls")),
]
