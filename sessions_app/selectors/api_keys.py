"""Looking up API keys. Import by module path (``sessions_app.selectors.api_keys``)."""

from __future__ import annotations

from ..models import ApiKey
from ..services.api_keys import api_key_hash


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key whose digest matches ``raw_key``, or None (unknown, malformed or revoked).

    One indexed lookup by digest: the digest is unique, so no comparison of secrets happens in
    Python and there is no timing signal about how much of a key was right."""
    if not raw_key or len(raw_key) > 200:
        return None
    return ApiKey.objects.filter(key_hash=api_key_hash(raw_key=raw_key), revoked_at__isnull=True).first()


def api_key_allows(*, api_key: ApiKey, scope: str) -> bool:
    """Whether ``api_key`` may use an endpoint that needs ``scope``: write implies read."""
    if scope == ApiKey.SCOPE_READ:
        return api_key.scope in (ApiKey.SCOPE_READ, ApiKey.SCOPE_WRITE)
    return api_key.scope == scope
