"""The product's URLs plus the bench's ceiling: a bare Django JSON view (same middleware)."""

from django.http import JsonResponse
from django.urls import include, path


def ping(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/ping", ping),
    path("", include("mangaassist.urls")),
]
