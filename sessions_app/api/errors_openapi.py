"""Error responses as they appear in the OpenAPI document (the shape is built in errors.py)."""

from __future__ import annotations

from .schemas import ErrorOut


def errors(*statuses: int) -> dict[int, type[ErrorOut]]:
    """``response={200: X, **errors(400, 404)}``: declare which error statuses an operation
    may answer, all with the one error body."""
    return {status: ErrorOut for status in statuses}
