"""Query-string strictness: an unknown parameter is a 400, like an unknown body field.

A typo such as ``?turn=5`` would otherwise be ignored silently and answer the default 20 turns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from ..exceptions import InvalidInput


def query_strict(*allowed: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Refuse query parameters other than ``allowed`` (place it under the route decorator)."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)  # ninja reads the parameters through __wrapped__
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            unknown = sorted(set(request.GET) - set(allowed))
            if unknown:
                raise InvalidInput(f"unknown query parameter {unknown[0]!r}", field=unknown[0])
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
