"""Identifiers that become parts of DynamoDB and Redis keys: one alphabet, checked in one place.

Below every layer (no project imports but ``exceptions``): the API's path patterns, the console's
form validators, the services and the selectors all use this module.
"""

from __future__ import annotations

import re

from .exceptions import InvalidInput

# Printable and key-safe: no "#" (the key separator), no spaces, no control characters.
_ID_BODY = r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}"
# Anchored for OpenAPI and JSON Schema (ECMAScript regexes: "$" is the very end there).
ID_PATTERN = rf"^{_ID_BODY}$"
ID_RULE = "1-128 characters of letters, digits and . _ : @ - (starting with a letter or digit)"
_ID_RE = re.compile(_ID_BODY)


def validate_id(value: object, *, field: str) -> str:
    """``value`` if it is a valid id, else ``InvalidInput`` naming ``field``."""
    # fullmatch, not match(ID_PATTERN): Python's "$" also matches before a trailing newline.
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise InvalidInput(f"{field} must be {ID_RULE}", field=field)
    return value
