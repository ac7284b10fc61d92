"""/connections: the WebSocket connection id ↔ session mapping ($connect / $disconnect).

Redis is the only store of this mapping, so when Redis is down these answer 503
(``redis_unavailable``) instead of guessing; API Gateway / the client retries.
"""

# No `from __future__ import annotations` here: query_strict wraps the views, and ninja
# evaluates string annotations in the wrapper's module, where these schemas are not defined.
from django.http import HttpRequest
from ninja import Path, Router, Status

from ..exceptions import MangaAssistError
from ..realtime import connection_delete, connection_get
from ..services.presence import connection_bind
from .auth import READ, WRITE
from .errors_openapi import errors
from .params import query_strict
from .schemas import ID_PATTERN, ConnectionIn, ConnectionOut

router = Router(tags=["connections"])

ConnectionId = Path(..., pattern=ID_PATTERN, description="The API Gateway WebSocket connection id.")


class ConnectionNotFound(MangaAssistError):
    code = "connection_not_found"
    http_status = 404


@router.put("/connections/{connection_id}", operation_id="connection_put", summary="Bind a connection to a session",
            auth=WRITE, response={200: ConnectionOut, **errors(400, 401, 403, 404, 409, 503)})
@query_strict()
def connection_put_view(request: HttpRequest, payload: ConnectionIn, connection_id: str = ConnectionId):
    """Bind the connection to a session (idempotent; rebinding moves it). 404
    ``session_not_found``: the session does not exist (never did, or was deleted); 409
    ``session_closed``. A refused bind leaves the connection's binding as it was."""
    connection_bind(connection_id=connection_id, session_id=payload.session_id)
    return ConnectionOut(connection_id=connection_id, session_id=payload.session_id)


@router.get("/connections/{connection_id}", operation_id="connection_get", summary="Get a connection's session",
            auth=READ, response={200: ConnectionOut, **errors(400, 401, 403, 404, 503)})
@query_strict()
def connection_get_view(request: HttpRequest, connection_id: str = ConnectionId):
    session_id = connection_get(connection_id=connection_id)
    if session_id is None:
        raise ConnectionNotFound(f"connection {connection_id} is not bound to a session", field="connection_id")
    return ConnectionOut(connection_id=connection_id, session_id=session_id)


@router.delete("/connections/{connection_id}", operation_id="connection_delete", summary="Unbind a connection",
               auth=WRITE, response={204: None, **errors(400, 401, 403, 503)})
@query_strict()
def connection_delete_view(request: HttpRequest, connection_id: str = ConnectionId):
    """Unbind the connection ($disconnect). Idempotent: 204 whether or not it was bound."""
    connection_delete(connection_id=connection_id)
    return Status(204, None)
