"""The project's own exceptions: every external boundary translates its errors into these.

Views map them to HTTP status codes (see ``http_status``); Celery tasks retry on the transient
ones (``StoreUnavailable``).
"""

from __future__ import annotations


class MangaAssistError(Exception):
    """Base class. ``code`` is a stable machine-readable name used in API error bodies."""

    code = "error"
    http_status = 400

    def __init__(self, message: str, *, field: str | None = None, **details):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details


class StoreUnavailable(MangaAssistError):
    """DynamoDB (and DAX, when it is the only path) could not be reached or timed out."""

    code = "store_unavailable"
    http_status = 503


class SessionNotFound(MangaAssistError):
    code = "session_not_found"
    http_status = 404


class SessionIdTaken(MangaAssistError):
    """A client-chosen session id that already belongs to another customer's session."""

    code = "session_id_taken"
    http_status = 409


class SessionClosed(MangaAssistError):
    code = "session_closed"
    http_status = 409


class SessionLocked(MangaAssistError):
    """Another writer holds the session's write lock longer than we were willing to wait."""

    code = "session_locked"
    http_status = 409


class ClientMsgIdConflict(MangaAssistError):
    """A client message id already stored for a turn with another text or role: not a retry of
    that message, and answering with the stored turn would hide the caller's new one."""

    code = "client_msg_id_conflict"
    http_status = 409


class ConflictRetryExhausted(MangaAssistError):
    """Optimistic concurrency lost too many races in a row; the caller may retry."""

    code = "write_conflict"
    http_status = 409


class RateLimited(MangaAssistError):
    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, *, limit: int, remaining: int, reset_seconds: float, retry_after: float):
        super().__init__(message)
        self.limit = limit
        self.remaining = remaining
        self.reset_seconds = reset_seconds
        self.retry_after = retry_after


class QueueUnavailable(MangaAssistError):
    """The task broker did not take a task (see ``sessions_app.jobs``)."""

    code = "queue_unavailable"
    http_status = 503


class InvalidCursor(MangaAssistError):
    code = "invalid_cursor"
    http_status = 400


class InvalidInput(MangaAssistError):
    code = "invalid_input"
    http_status = 400


class RedisUnavailable(MangaAssistError):
    """Raised inside sessions_app.realtime only; callers decide how to degrade."""

    code = "redis_unavailable"
    http_status = 503


class BotPaused(MangaAssistError):
    """A staff member owns the session: the bot's (assistant) turns are refused until they hand
    it back. ``details``: ``owner`` (display name) and ``since`` (ISO time)."""

    code = "bot_paused"
    http_status = 409


class AlreadyOwned(MangaAssistError):
    """Someone else took the session over first. ``details``: ``owner``."""

    code = "already_owned"
    http_status = 409


class NotOwner(MangaAssistError):
    """The action needs the session's owner (reply, hand back), and that is someone else or
    nobody."""

    code = "not_owner"
    http_status = 409


class NotHandedOff(MangaAssistError):
    """Only a session the bot handed off (or that is already with a human) can be taken over."""

    code = "not_handed_off"
    http_status = 409


class WrongRegion(MangaAssistError):
    """A write to a session whose home region is another one. With global tables every region
    holds a replica of every session, but a session is written in one region only — its home
    region, stored on META when it starts — because replication resolves concurrent writes to an
    item by last writer wins, which would lose turn-count updates and so break the turn sequence.
    Refused, not forwarded: the bot runtime's regional routing must send the session's traffic
    home (a forward would hide that routing bug and add a cross-region round trip to every turn).
    ``details``: ``home_region`` (where to send it) and ``region`` (the one that refused)."""

    code = "wrong_region"
    http_status = 409
