"""The bot runtime's realtime writes, for open sessions only: heartbeats (presence) and WebSocket
connection binds. Both write Redis keys named by the session id, so neither may bring back a
session a privacy delete erased, nor mark a closed one online (docs/architecture.md §Redis).

Which read decides (a decision, not an accident):

* a heartbeat (every few seconds per chatting customer) asks DAX first — META is in its item
  cache, so the check costs about a millisecond and no read capacity — and DynamoDB (strongly
  consistent) only before refusing: DAX may not have a session started a moment ago, and keeps
  misses; and after a delete it may still hold the closed copy the delete's close wrote. A
  closed or missing copy is never taken on DAX's word. What DAX can get wrong is an *open* copy
  of a session deleted while DAX was bypassed (its fallback): then heartbeats are still
  recorded until DAX's item TTL runs out (5 minutes by default), each entry living
  ``PRESENCE_TTL_SECONDS`` (90 s). A Redis tombstone written by the privacy delete would close
  that gap; this module does not need one for the common path.
* a bind ($connect, once per WebSocket) reads strongly consistent before and again after the
  write: the mapping lives ``CONNECTION_TTL_SECONDS`` (two hours), so it must never outlive the
  session. A delete that lands between the first read and the write is caught by the second
  (the mapping is taken back); one that lands after it removes the mapping itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import RedisUnavailable, SessionClosed, SessionNotFound
from ..models import SessionMeta, SessionStatus
from ..realtime import connection_delete, connection_put, connections_for_session, presence_get, presence_heartbeat
from ..selectors.sessions import session_get


def _session_open(*, session_id: str, cached: bool) -> SessionMeta:
    """META of an open session, else ``SessionNotFound`` / ``SessionClosed``. ``cached``: ask
    DAX first; a refusal is still decided by a strongly consistent read."""
    meta = None
    if cached:
        try:
            meta = session_get(session_id=session_id)
        except SessionNotFound:
            pass
    if meta is None or meta.status == SessionStatus.CLOSED:
        meta = session_get(session_id=session_id, consistent=True)
    if meta.status == SessionStatus.CLOSED:
        raise SessionClosed(f"session {session_id} is closed", field="session_id")
    return meta


@dataclass(frozen=True, slots=True)
class Heartbeat:
    recorded: bool  # False: Redis is unavailable, presence is unknown
    connection_id: str | None  # the session's connection, as recorded with this heartbeat


def heartbeat_record(*, session_id: str, connection_id: str | None = None) -> Heartbeat:
    """Record a heartbeat of an open session (see ``realtime.presence_heartbeat``) and say which
    WebSocket connection it is on. Raises ``SessionNotFound`` (unknown or deleted),
    ``SessionClosed``, ``StoreUnavailable``; Redis down: ``recorded`` False, no connection.

    A heartbeat that names no connection is on the session's connection all the same: the one
    ``PUT /connections`` bound to it (``_session_connection``). It is recorded with the heartbeat,
    so the console's presence shows it too, and the reply never says null while one is mapped.
    Looking it up costs one to three Redis round trips more than a heartbeat that names its
    connection (one round trip in all), so a runtime that knows it should send it."""
    _session_open(session_id=session_id, cached=True)
    if connection_id is None:
        connection_id = _session_connection(session_id=session_id)
    recorded = presence_heartbeat(session_id=session_id, connection_id=connection_id)
    return Heartbeat(recorded=recorded, connection_id=connection_id if recorded else None)


def presence_record(*, session_id: str, connection_id: str | None = None) -> bool:
    """``heartbeat_record`` for callers that only need to know whether it was recorded."""
    return heartbeat_record(session_id=session_id, connection_id=connection_id).recorded


def _session_connection(*, session_id: str) -> str | None:
    """The connection a heartbeat without one is on. The mapping (``PUT /connections``) decides;
    of several live bindings (a reconnect whose old connection has not disconnected yet), the one
    heartbeats recorded last, else the first by id — a stable choice. With no binding, the
    connection earlier heartbeats named (a runtime that never binds). Redis down: None (the
    heartbeat that follows finds it down too and answers "unknown")."""
    try:
        mapped = connections_for_session(session_id=session_id)
    except RedisUnavailable:
        return None
    if len(mapped) == 1:
        return mapped[0]
    recorded = presence_get(session_id=session_id).connection_id
    if not mapped:
        return recorded
    return recorded if recorded in mapped else mapped[0]


def connection_bind(*, connection_id: str, session_id: str) -> None:
    """Bind a WebSocket connection to an open session (see ``realtime.connection_put``). Raises
    ``SessionNotFound`` (unknown or deleted, also when deleted while binding), ``SessionClosed``,
    ``StoreUnavailable``, ``RedisUnavailable``. A refused bind leaves an existing binding of the
    connection as it was — unless the session went away during the bind, which takes it back."""
    _session_open(session_id=session_id, cached=False)
    connection_put(connection_id=connection_id, session_id=session_id)
    try:
        _session_open(session_id=session_id, cached=False)
    except (SessionNotFound, SessionClosed):
        connection_delete(connection_id=connection_id)
        raise
