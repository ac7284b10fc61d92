"""Request and response bodies. Request bodies forbid unknown fields and coerce nothing (a
token count sent as "12" or true is an error, not a guess); responses mirror
``sessions_app.selectors.presenters`` (timestamps are ISO 8601 strings in UTC, ``Z``-suffixed)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from ..ids import ID_PATTERN
from ..services.sessions import CHANNELS, LOCALES, MAX_TAGS
from ..services.turns import ROLES

# The alphabet sessions_app.ids enforces, stated in the OpenAPI document too, so clients (and
# schemathesis) know a valid id before they send one.
Id = Annotated[str, StringConstraints(pattern=ID_PATTERN)]

Channel = Literal[CHANNELS]  # type: ignore[valid-type]
Locale = Literal[LOCALES]  # type: ignore[valid-type]
Role = Literal[ROLES]  # type: ignore[valid-type]


def _integral(value: object) -> object:
    """JSON has one number type: 12.0 is a valid integer to JSON Schema, so accept it as 12
    (strict mode still refuses 12.5, "12" and true)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Upper bounds keep values inside what DynamoDB numbers can hold (38 significant digits) and
# inside reason: a day of latency, a billion tokens.
Latency = Annotated[float, Field(ge=0, le=86_400_000)]
TokenCount = Annotated[int, Field(ge=0, le=1_000_000_000), BeforeValidator(_integral)]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class SessionStartIn(RequestBody):
    customer_id: Id
    session_id: Id | None = Field(None, description=(
        "The caller's own id for the session (default: the server assigns one). A retry with the same id "
        "and customer answers 200 with the stored session; another customer's id answers 409."))
    channel: Channel
    locale: Locale = "en"
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=40)]] = Field(default_factory=list, max_length=MAX_TAGS)


class TurnAppendIn(RequestBody):
    role: Role
    # pattern: at least one non-blank character (turn_validate refuses blank text too).
    text: str = Field(min_length=1, pattern=r"\S", description=(
        "UTF-8; at most TURN_TEXT_MAX_BYTES bytes (16 KB by default): a longer text answers 413 payload_too_large."))
    client_msg_id: Id = Field(description="The caller's id for this message: a retry with the same id returns the stored turn.")
    model: Annotated[str, StringConstraints(max_length=100)] | None = None
    latency_ms: Latency | None = None
    tokens_in: TokenCount | None = None
    tokens_out: TokenCount | None = None


class HandoffIn(RequestBody):
    reason: Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")] = Field(
        description="Why the bot asks for a human (shown to staff in the queue).")
    note: Annotated[str, StringConstraints(max_length=2000)] | None = Field(
        None, description="Anything staff should know first.")


class HeartbeatIn(RequestBody):
    connection_id: Id | None = None


class ConnectionIn(RequestBody):
    session_id: Id


class HandoffOut(BaseModel):
    state: Literal["bot", "waiting", "human"] = Field(description=(
        "bot: the bot answers. waiting: the bot asked for a human and nobody has taken over yet (tell the "
        "customer someone is coming). human: a staff member has taken over: assistant turns answer 409 "
        "bot_paused until they hand the session back."))
    owner: str | None = Field(description="The staff member's display name (state human).")
    since: str | None = Field(description="When the state began: the hand-off request (waiting) or the takeover (human).")
    reason: str | None = Field(description="The reason the bot gave when it asked for a human.")


class SessionOut(BaseModel):
    session_id: str
    customer_id: str
    channel: str
    locale: str
    status: str
    tags: list[str]
    started_at: str
    last_message_at: str | None
    closed_at: str | None
    turn_count: int
    summary_through: int
    handoff: HandoffOut
    # The only region that may write the session (global tables: docs/infrastructure.md); null for
    # sessions started before it was recorded, which any region may write.
    home_region: str | None


class TurnOut(BaseModel):
    seq: int
    role: str
    text: str
    created_at: str
    client_msg_id: str
    model: str | None
    latency_ms: float | None
    tokens_in: int | None
    tokens_out: int | None
    author: str | None = Field(None, description="A staff reply's author (role agent).")


class SummaryOut(BaseModel):
    text: str
    through_seq: int
    generator: str | None
    created_at: str | None


class ContextOut(BaseModel):
    session: SessionOut
    turns: list[TurnOut] = Field(description="The last N turns, oldest first.")
    summary: SummaryOut | None


class PresenceOut(BaseModel):
    session_id: str
    state: Literal["online", "unknown"] = Field(description="unknown: Redis is unavailable, so presence could not be recorded.")
    connection_id: str | None = Field(description=(
        "The session's WebSocket connection: the heartbeat's own, else the one bound by PUT /connections; "
        "null when it has none (or state is unknown)."))


class ConnectionOut(BaseModel):
    connection_id: str
    session_id: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None
    details: dict[str, Any] | None = None


class ErrorOut(BaseModel):
    error: ErrorDetail
