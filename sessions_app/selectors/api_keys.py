"""Looking up API keys. Import by module path (``sessions_app.selectors.api_keys``)."""

from __future__ import annotations

import threading
import time

from django.conf import settings

from ..models import ApiKey

# Valid keys seen recently, by digest, per process. The lookup was ~40 % of a warm context request
# (bench scenario 1); the price is that a revocation made in another process takes effect there
# within API_KEY_CACHE_SECONDS. Unknown keys are never cached, so random keys cannot fill it.
_cache: dict[str, tuple[float, ApiKey]] = {}
_cache_lock = threading.Lock()
_CACHE_MAX = 10_000


def api_key_authenticate(*, raw_key: str) -> ApiKey | None:
    """The active key whose digest matches ``raw_key``, or None (unknown, malformed or revoked).

    One indexed lookup by digest: the digest is unique, so no comparison of secrets happens in
    Python and there is no timing signal about how much of a key was right. Valid keys are
    remembered for ``API_KEY_CACHE_SECONDS`` (0 turns the cache off)."""
    if not raw_key or len(raw_key) > 200:
        return None
    digest = ApiKey.hash_of(raw_key)
    ttl = settings.API_KEY_CACHE_SECONDS
    now = time.monotonic()
    cached = _cache.get(digest) if ttl > 0 else None
    if cached is not None and cached[0] > now:
        return cached[1]
    api_key = ApiKey.objects.filter(key_hash=digest, revoked_at__isnull=True).first()
    if api_key is not None and ttl > 0:
        with _cache_lock:
            if len(_cache) >= _CACHE_MAX:
                _cache.clear()
            _cache[digest] = (now + ttl, api_key)
    return api_key


def api_key_cache_clear() -> None:
    """Forget cached keys (this process): called on revocation."""
    with _cache_lock:
        _cache.clear()


def api_key_allows(*, api_key: ApiKey, scope: str) -> bool:
    """Whether ``api_key`` may use an endpoint that needs ``scope``: write implies read."""
    if scope == ApiKey.SCOPE_READ:
        return api_key.scope in (ApiKey.SCOPE_READ, ApiKey.SCOPE_WRITE)
    return api_key.scope == scope
