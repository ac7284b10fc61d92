"""GET /sessions: a read-only, cursor-paginated listing, with the staff console's filters.

The query parameters are the fields of ``SessionFilter`` (which validates them, as it does for the
console and the filtered export) plus ``cursor`` and ``limit``; sessions come newest first, and a
page that is short for a reason other than the end says why in ``short_reason``.
"""

# No `from __future__ import annotations` here: query_strict wraps the view, and ninja
# evaluates string annotations in the wrapper's module, where these schemas are not defined.
from datetime import date
from typing import Literal

from django.conf import settings
from django.http import HttpRequest
from ninja import Query
from pydantic import BaseModel, Field

from ..ids import ID_PATTERN
from ..models import CHANNELS, SessionStatus
from ..selectors.browse import session_find
from ..selectors.filters import SUMMARY_STATES, SessionFilter
from ..selectors.presenters import session_dict
from .auth import READ
from .errors_openapi import errors
from .params import query_strict
from .schemas import SessionOut
from .sessions import router

# The listing is an operation of the sessions router, not a router of its own: ninja makes one URL
# pattern per path per router, so a second router's "/sessions" would be shadowed by the first
# (whose POST-only view answers GET with 405). Importing this module (api/__init__.py) registers it.

MAX_LIMIT = 100
FILTERS = ("day_from", "day_to", "customer_id", "status", "channel", "summary_state", "online")


class SessionListItemOut(SessionOut):
    summary_state: Literal[SUMMARY_STATES] = Field(  # type: ignore[valid-type]
        description="none / pending / fresh / stale / failed, derived as the console shows it.")


class SessionListOut(BaseModel):
    sessions: list[SessionListItemOut] = Field(description="Newest first (by start time).")
    cursor: str | None = Field(description="Pass it back for the next page; null when the listing is complete.")
    short_reason: str | None = Field(description="Why this page holds fewer than `limit` sessions although `cursor` is set.")


@router.get("/sessions", operation_id="session_list", summary="List sessions", auth=READ,
            response={200: SessionListOut, **errors(400, 401, 403, 503)})
@query_strict(*FILTERS, "cursor", "limit")
def session_list_view(
    request: HttpRequest,
    day_from: date | None = Query(None, description="First UTC day of the start time (default: 30 days before day_to)."),
    day_to: date | None = Query(None, description="Last UTC day of the start time (default: today)."),
    # The allowed values are stated in the OpenAPI document too (SessionFilter still decides).
    customer_id: str | None = Query(None, pattern=ID_PATTERN, description="Only this customer's sessions."),
    status: Literal[SessionStatus.ALL] | None = Query(None),  # type: ignore[valid-type]
    channel: Literal[CHANNELS] | None = Query(None),  # type: ignore[valid-type]
    summary_state: Literal[SUMMARY_STATES] | None = Query(None, description="As the console derives it."),  # type: ignore[valid-type]
    online: bool = Query(False, description="Only sessions online now (from presence; one page, no cursor)."),
    cursor: str | None = Query(None, description="The `cursor` of the previous page."),
    limit: int | None = Query(None, ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT} (default PAGE_SIZE)."),
):
    filters = SessionFilter(day_from=day_from, day_to=day_to, customer_id=customer_id, status=status,
                            channel=channel, summary_state=summary_state, online=online)
    page = session_find(filters=filters, cursor=cursor or None, limit=limit or min(settings.PAGE_SIZE, MAX_LIMIT))
    return {
        "sessions": [{**session_dict(m.meta), "summary_state": m.summary.state} for m in page.matches],
        "cursor": page.cursor,
        "short_reason": page.short_reason,
    }
