"""Small helpers shared by the write services."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from ..exceptions import InvalidInput

# Ids become part of DynamoDB keys and Redis keys: keep them to a safe, printable alphabet.
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def validate_id(value: object, *, field: str) -> str:
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise InvalidInput(
            f"{field} must be 1-128 characters of letters, digits and . _ : @ - (starting with a letter or digit)",
            field=field,
        )
    return value
