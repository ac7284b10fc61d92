"""API keys for the chatbot runtime: create, revoke, record use.

A key is shown once, at creation; only its SHA-256 digest is stored (see ``ApiKey``). Import by
module path (``from sessions_app.services.api_keys import api_key_create``).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from ..exceptions import InvalidInput
from ..models import ApiKey
from ..selectors.api_keys import api_key_cache_clear

# Recognisable in logs and secret scanners; the random part carries 256 bits.
KEY_PREFIX = "ma_"
PREFIX_LENGTH = 12  # ApiKey.prefix: enough to tell keys apart in the admin, far too little to guess
# last_used_at is a console hint ("is this key still in use?"), not an audit trail: writing it on
# every request would turn every API read into a database write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def api_key_create(*, name: str, scope: str = ApiKey.SCOPE_READ) -> tuple[ApiKey, str]:
    """Create a key named ``name`` with ``scope`` (read | write). Returns ``(api_key, raw_key)``;
    the raw key exists nowhere else afterwards, so the caller must show it now.

    Raises ``InvalidInput`` for an empty or taken name or an unknown scope."""
    name = (name or "").strip()
    if not name or len(name) > ApiKey._meta.get_field("name").max_length:
        raise InvalidInput("name must be 1-100 characters", field="name")
    if scope not in dict(ApiKey.SCOPES):
        raise InvalidInput(f"scope must be one of {', '.join(dict(ApiKey.SCOPES))}", field="scope")
    raw_key = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            api_key = ApiKey.objects.create(
                name=name, scope=scope, prefix=raw_key[:PREFIX_LENGTH], key_hash=ApiKey.hash_of(raw_key)
            )
    except IntegrityError:
        raise InvalidInput(f"an API key named {name!r} already exists", field="name") from None
    return api_key, raw_key


def api_key_revoke(*, api_key: ApiKey, now: datetime | None = None) -> bool:
    """Revoke ``api_key`` from now on. Idempotent: returns False if it was already revoked
    (the first revocation time is kept)."""
    now = now or timezone.now()
    updated = ApiKey.objects.filter(pk=api_key.pk, revoked_at__isnull=True).update(revoked_at=now)
    if updated:
        api_key.revoked_at = now
        api_key_cache_clear()
    return bool(updated)


def api_key_mark_used(*, api_key: ApiKey, now: datetime | None = None) -> bool:
    """Record that ``api_key`` was just used, at most once per ``LAST_USED_RESOLUTION``.

    Returns True if it wrote. The in-memory value short-circuits most calls; the conditional
    UPDATE keeps concurrent requests from all writing once it is due."""
    now = now or timezone.now()
    cutoff = now - LAST_USED_RESOLUTION
    if api_key.last_used_at is not None and api_key.last_used_at > cutoff:
        return False
    updated = (
        ApiKey.objects.filter(pk=api_key.pk)
        .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff))
        .update(last_used_at=now)
    )
    if updated:
        api_key.last_used_at = now
    return bool(updated)
