"""Bearer API keys with a scope: GET endpoints need ``read``, everything else ``write``.

Missing, unknown or revoked key → 401; a valid key without the scope → 403.
"""

from __future__ import annotations

from django.http import HttpRequest
from ninja.errors import AuthorizationError
from ninja.security import HttpBearer

from ..models import ApiKey
from ..selectors.api_keys import api_key_allows, api_key_authenticate
from ..services.api_keys import api_key_mark_used


class ApiKeyAuth(HttpBearer):
    def __init__(self, *, scope: str) -> None:
        super().__init__()
        self.scope = scope

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
