"""The JSON API for the bot runtime, mounted at /api/v1/ (OpenAPI at /api/v1/openapi.json).

Layout: ``auth`` (bearer API keys with scopes), ``schemas`` (bodies), ``errors`` (the one error
shape for everything, ninja's own errors included), ``params`` (strict query strings),
``sessions`` and ``connections`` (routers).
"""

from typing import Any

from django.urls import URLPattern
from ninja import NinjaAPI, Swagger

from . import connections, listing, search, sessions  # noqa: F401  (listing adds GET /sessions to sessions.router)
from .errors import errors_install, json_method_not_allowed
from .methods import head_as_get


class _Api(NinjaAPI):
    # Every operation declares its operation_id (client generators turn it into a method name, so
    # it is part of the contract and must not follow a function's rename) and its summary (what
    # /api/v1/docs lists) by hand; tests/api/test_openapi_docs.py fails on one ninja generated.

    @property
    def urls(self) -> tuple[list[Any], str, str]:
        # ninja answers a wrong method with a plain-text 405 outside its exception handlers;
        # wrapping its views keeps that answer in the API's error shape too. And ninja knows no
        # HEAD: a HEAD on a GET endpoint is answered as GET is, without the body.
        patterns, app_name, namespace = super().urls
        for pattern in patterns:
            if isinstance(pattern, URLPattern):
                pattern.callback = json_method_not_allowed(head_as_get(pattern.callback))
        return patterns, app_name, namespace


api = _Api(
    title="MangaAssist sessions API",
    version="1",
    urls_namespace="api-v1",
    description="Chat sessions for the MangaAssist bot runtime. Authenticate with `Authorization: Bearer <key>`.",
    # Swagger UI from django-ninja's static files ("ninja" is in INSTALLED_APPS), under the console's
    # CSP; validatorUrl off: its badge would be an image from validator.swagger.io, and the docs
    # make no request outside this origin.
    docs=Swagger(settings={"validatorUrl": None}),
)
errors_install(api)
api.add_router("/", sessions.router)
api.add_router("/", connections.router)
api.add_router("/", search.router)

__all__ = ["api"]
