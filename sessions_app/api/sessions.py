"""/sessions: start, append a turn, load the bot's context, close, heartbeat.

Handlers parse (ninja + schemas), make one service/selector call, and render. Errors are raised
as the project's exceptions and rendered by ``errors.py``.
"""

# No `from __future__ import annotations` here: query_strict wraps the views, and ninja
# evaluates string annotations in the wrapper's module, where these schemas are not defined.
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Path, Query, Router, Status

from ..exceptions import MangaAssistError
from ..observability import metrics
from ..selectors import context_load, session_dict, session_get, turn_dict
from ..services import session_close, session_start, turn_append
from ..services.handoff import handoff_request
from ..services.presence import heartbeat_record
from .auth import READ, WRITE
from .errors import error_status
from .errors_openapi import errors
from .params import query_strict
from .schemas import ID_PATTERN, ContextOut, HandoffIn, HeartbeatIn, PresenceOut, SessionOut, SessionStartIn, TurnAppendIn, TurnOut

router = Router(tags=["sessions"])

SessionId = Path(..., pattern=ID_PATTERN, description="The session's id.")


@router.post("/sessions", operation_id="session_start", summary="Start a session", auth=WRITE,
             response={201: SessionOut, 200: SessionOut, **errors(400, 401, 403, 409, 503)})
@query_strict()
def session_start_view(request: HttpRequest, payload: SessionStartIn):
    """Start a session: 201. With a caller-chosen ``session_id``, a retry answers 200 with the
    session stored the first time; an id another customer's session has answers 409."""
    meta, created = session_start(**payload.model_dump())
    return Status(201 if created else 200, session_dict(meta))


@router.get("/sessions/{session_id}", operation_id="session_get", summary="Get a session", auth=READ,
            response={200: SessionOut, **errors(400, 401, 403, 404, 503)})
@query_strict()
def session_get_view(request: HttpRequest, session_id: str = SessionId):
    return session_dict(session_get(session_id=session_id, consistent=True))


@router.post(
    "/sessions/{session_id}/turns", operation_id="turn_append", summary="Append a turn", auth=WRITE,
    response={201: TurnOut, 200: TurnOut, **errors(400, 401, 403, 404, 409, 413, 429, 503)},
)
@query_strict()
def turn_append_view(request: HttpRequest, response: HttpResponse, payload: TurnAppendIn, session_id: str = SessionId):
    """Append a turn; answers 201 with the stored turn and its ``seq``. A retry with the same
    ``client_msg_id`` answers 200 with the turn stored the first time (nothing is written twice).
    ``X-RateLimit-Limit/Remaining/Reset`` describe the customer's window (absent when the limit
    could not be checked); 429 adds ``Retry-After``. 409: the session is closed
    (``session_closed``) or too busy (``session_locked``, ``write_conflict``) — retry those —
    or the ``client_msg_id`` is already stored for a turn with another text or role
    (``client_msg_id_conflict``, field ``client_msg_id``: send the new message with a new id), or
    — for ``role: "assistant"`` — a staff member owns the session (``bot_paused``, with
    ``details.owner`` and ``details.since``: stay silent until ``handoff.state`` is ``bot`` again;
    user turns are still stored). 413 ``payload_too_large`` (field ``text``, ``details.limit``): the
    text is over TURN_TEXT_MAX_BYTES bytes of UTF-8 (16 KB by default); nothing is stored."""
    try:
        result = turn_append(session_id=session_id, **payload.model_dump())
    except MangaAssistError as exc:  # rendered by errors.py; counted here by the status it gets
        metrics.count(metrics.TURN_APPENDS, str(error_status(exc)[0]))
        raise
    metrics.count(metrics.TURN_APPENDS, "201" if result.created else "replay")
    for name, value in (result.rate.headers() if result.rate else {}).items():
        response[name] = value
    return Status(201 if result.created else 200, turn_dict(result.turn))


@router.get("/sessions/{session_id}/context", operation_id="context_load", summary="Load the bot's context", auth=READ,
            response={200: ContextOut, **errors(400, 401, 403, 404, 503)})
@query_strict("turns", "min_seq")
def context_load_view(
    request: HttpRequest,
    session_id: str = SessionId,
    # The bound is read once at import: settings come from the environment, fixed per process.
    turns: int | None = Query(None, ge=1, le=settings.CONTEXT_MAX_TURNS,
                              description="How many recent turns (default CONTEXT_DEFAULT_TURNS)."),
    min_seq: int | None = Query(None, ge=0, description="The seq of the caller's last append: the answer is guaranteed to include it."),
):
    """The hot path: META + the last ``turns`` turns (oldest first) + the latest summary.
    ``X-Context-Source`` says where it was actually read from: ``redis`` (the context cache),
    ``dax``, ``dynamodb`` (DAX off), ``dynamodb-consistent`` (a strongly consistent read: Redis
    down, or DAX's copy of META was behind a turn the caller knows of) or ``fallback`` (DAX
    failed or its circuit breaker is open); for several reads, the least cached of them."""
    loaded = context_load(session_id=session_id, turns=turns, min_seq=min_seq)
    # The payload is already the response body (cached as bytes): no re-serialisation.
    response = HttpResponse(loaded.payload, content_type="application/json")
    response["X-Context-Source"] = loaded.source
    return response


@router.post("/sessions/{session_id}/handoff", operation_id="handoff_request", summary="Ask for a human",
             auth=WRITE, response={200: SessionOut, **errors(400, 401, 403, 404, 409, 503)})
@query_strict()
def handoff_request_view(request: HttpRequest, payload: HandoffIn, session_id: str = SessionId):
    """The bot asks for a human: the session becomes ``handed_off``, unowned, and waits in the
    console's "needs a human" queue (``handoff.state`` = ``waiting``). Idempotent: asking again
    while it waits or while staff own it answers 200 with the state unchanged. 409
    ``session_closed``. While staff own the session, assistant turns answer 409 ``bot_paused``
    (user turns are still stored); ``GET …/context`` carries ``handoff`` so the bot knows."""
    meta, _changed = handoff_request(session_id=session_id, reason=payload.reason, note=payload.note)
    return session_dict(meta)


@router.post("/sessions/{session_id}/close", operation_id="session_close", summary="Close a session", auth=WRITE,
             response={200: SessionOut, **errors(400, 401, 403, 404, 409, 503)})
@query_strict()
def session_close_view(request: HttpRequest, session_id: str = SessionId):
    """Close the session (idempotent: closing a closed session answers 200 again). The cached
    context is dropped and the session marked offline, so the next context read says closed."""
    meta, _changed = session_close(session_id=session_id)
    return session_dict(meta)


@router.post("/sessions/{session_id}/heartbeat", operation_id="presence_heartbeat", summary="Send a heartbeat",
             auth=WRITE, response={200: PresenceOut, **errors(400, 401, 403, 404, 409, 503)})
@query_strict()
def presence_heartbeat_view(request: HttpRequest, session_id: str = SessionId, payload: HeartbeatIn | None = None):
    """Mark the session online (optionally naming the WebSocket ``connection_id``). The reply's
    ``connection_id`` is the session's connection: the one named, else the one ``PUT
    /connections`` bound to the session (null only when it has none). Presence lives in Redis
    only; with Redis down the heartbeat is not recorded and the state is ``unknown`` — still a
    200: the chat itself is unaffected. 404 ``session_not_found``: the session does not exist
    (never did, or was deleted); 409 ``session_closed``: stop sending heartbeats — a closed
    session is never shown online (its close cleared its presence)."""
    beat = heartbeat_record(session_id=session_id, connection_id=payload.connection_id if payload else None)
    return PresenceOut(session_id=session_id, state="online" if beat.recorded else "unknown",
                       connection_id=beat.connection_id)
