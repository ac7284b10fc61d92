"""HEAD on the API: answered like GET (RFC 9110 §9.3.2).

ninja registers only the methods an operation declares, so HEAD on a GET endpoint would be a
405. :func:`head_as_get` wraps a URL's view: a HEAD request runs as GET — same authentication,
same status, same headers. The server drops the body (gunicorn and Django's own server do;
``Content-Length`` keeps the length GET's body has). Where GET is not allowed either, the view's
405 is returned as it is (``errors.json_method_not_allowed`` shapes it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponseBase


def head_as_get(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    @functools.wraps(view)  # keeps ninja's csrf_exempt flag
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.method != "HEAD":
            return view(request, *args, **kwargs)
        request.method = "GET"
        try:
            return view(request, *args, **kwargs)
        finally:
            request.method = "HEAD"

    return wrapper
