"""The streamed export download, one response for the console and the admin alike.

An entry-point module (docs/architecture.md §Layers): it turns a selector's chunks into HTTP,
which the read layer itself knows nothing about.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import StreamingHttpResponse

from .models import SessionMeta
from .selectors.export import EXPORT_FORMATS, export_csv_chunks, export_format, export_json_chunks


def export_response(*, fmt: str, sessions: Iterable[SessionMeta], filename: str) -> StreamingHttpResponse:
    """``no-store``: an export holds customers' chat text, which no browser or proxy cache
    should keep. ``fmt`` is checked (``InvalidInput`` naming "format")."""
    chunks = (export_json_chunks if export_format(fmt) == "json" else export_csv_chunks)(sessions=sessions)
    response = StreamingHttpResponse(chunks, content_type=EXPORT_FORMATS[fmt])
    response["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
