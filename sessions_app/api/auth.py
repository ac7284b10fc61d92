"""Bearer API keys with a scope: GET endpoints need ``read``, everything else ``write``.

Missing, unknown or revoked key → 401; a valid key without the scope → 403. No log line ever
holds the Authorization value: ninja's ``HttpBearer.__call__`` logs the whole header when DEBUG is
on and the scheme is not Bearer, so ``ApiKeyAuth`` parses the header itself.
"""

from __future__ import annotations

import logging

from django.http import HttpRequest
from ninja.errors import AuthorizationError
from ninja.security import HttpBearer

from ..models import ApiKey
from ..selectors.api_keys import api_key_allows, api_key_authenticate
from ..services.api_keys import api_key_mark_used

logger = logging.getLogger(__name__)


class ApiKeyAuth(HttpBearer):
    def __init__(self, *, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def __call__(self, request: HttpRequest) -> ApiKey | None:
        # ninja's HttpBearer.__call__, minus its DEBUG log of the header (a credential).
        value = request.headers.get(self.header)
        if not value:
            return None
        scheme, _, token = value.partition(" ")
        if scheme.lower() != self.openapi_scheme:
            logger.debug("Authorization header without the Bearer scheme (value not logged)")
            return None
        return self.authenticate(request, token)

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        api_key = api_key_authenticate(raw_key=token)
        if api_key is None:
            return None
        if not api_key_allows(api_key=api_key, scope=self.scope):
            raise AuthorizationError(message=f"this API key has scope {api_key.scope!r}; this endpoint needs {self.scope!r}")
        api_key_mark_used(api_key=api_key)
        return api_key


READ = ApiKeyAuth(scope=ApiKey.SCOPE_READ)
WRITE = ApiKeyAuth(scope=ApiKey.SCOPE_WRITE)
