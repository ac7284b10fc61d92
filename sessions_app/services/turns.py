"""Appending turns: the hot write path (docs/architecture.md §Write path)."""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from pynamodb.exceptions import TransactWriteError
from pynamodb.transactions import TransactWrite

from .. import dynamo, keys
from ..realtime import RateDecision, context_cache_hint_raise, context_cache_turn_written, rate_limit_hit, session_write_lock
from ..exceptions import BotPaused, ClientMsgIdConflict, ConflictRetryExhausted, InvalidInput, NotOwner, SessionClosed
from ..models import ClientMessageMarker, SessionMeta, SessionStatus, Turn, app_write_mark
from ..selectors.sessions import session_get
from ..selectors.summaries import SummaryStates, summary_state_key
from ..clock import utcnow
from ..ids import validate_id
from ..observability.logs import bind
from .sessions import session_home_check
from .summaries import summary_request
from ..usage import turn_usage_record
from .usage import usage_actions

log = logging.getLogger(__name__)

ROLES = ("user", "assistant", "system")  # what the bot runtime may send
BOT_ROLE = "assistant"  # refused while a staff member owns the session (409 bot_paused)
STAFF_ROLE = "agent"  # a staff member's reply (services.handoff.staff_reply), never sent by the bot
MAX_AUTHOR_CHARS = 150
MAX_ATTEMPTS = 64
MAX_TOKENS = 1_000_000_000
MAX_LATENCY_MS = 86_400_000  # a day


@dataclass(frozen=True)
class AppendResult:
    turn: Turn
    created: bool  # False: a replay of an earlier append with the same client_msg_id
    meta: SessionMeta  # META as it was read before the write (customer, status, ...)
    rate: RateDecision | None = None  # the customer's rate-limit window after this append


def turn_validate(*, role: str, text: str, client_msg_id: str, model, latency_ms, tokens_in, tokens_out,
                  author: str | None = None) -> None:
    if role == STAFF_ROLE:
        if not isinstance(author, str) or not 0 < len(author) <= MAX_AUTHOR_CHARS:
            raise InvalidInput(f"a staff reply needs its author (1-{MAX_AUTHOR_CHARS} characters)", field="author")
    elif role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("text must be a non-empty string", field="text")
    size = len(text.encode("utf-8"))
    if size > settings.TURN_TEXT_MAX_BYTES:
        raise InvalidInput(
            f"text is {size} bytes; the limit is {settings.TURN_TEXT_MAX_BYTES} bytes (UTF-8)", field="text",
            limit=settings.TURN_TEXT_MAX_BYTES,
        )
    validate_id(client_msg_id, field="client_msg_id")
    if model is not None and (not isinstance(model, str) or len(model) > 100):
        raise InvalidInput("model must be a string of at most 100 characters", field="model")
    for name, value, upper in (("latency_ms", latency_ms, MAX_LATENCY_MS), ("tokens_in", tokens_in, MAX_TOKENS),
                               ("tokens_out", tokens_out, MAX_TOKENS)):
        if value is None:
            continue
        # Also keeps values DynamoDB cannot store (NaN, infinities, 1e-200) out of the transaction.
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= upper:
            raise InvalidInput(f"{name} must be a number from 0 to {upper}", field=name)
        if name != "latency_ms" and value != int(value):
            raise InvalidInput(f"{name} must be a whole number", field=name)


def _stored_turn_for(session_id: str, client_msg_id: str, *, role: str, text: str) -> Turn | None:
    """The turn an earlier append with this client message id wrote, if any (consistent read).

    Raises ``ClientMsgIdConflict`` when that turn has another role or text: the caller is not
    retrying that message, and answering with the stored turn would silently drop its new one.
    """
    pk = keys.session_pk(session_id)
    try:
        marker = ClientMessageMarker.get(pk, keys.client_msg_sk(client_msg_id), consistent_read=True)
    except ClientMessageMarker.DoesNotExist:
        return None
    stored = Turn.get(pk, keys.turn_sk(int(marker.seq)), consistent_read=True)
    if stored.role != role or stored.text != text:
        differs = "role" if stored.role != role else "text"
        raise ClientMsgIdConflict(
            f"client_msg_id {client_msg_id!r} is already turn {int(stored.seq)}, with another {differs}; "
            "use a new client_msg_id for a new message", field="client_msg_id", seq=int(stored.seq),
        )
    return stored


def _summary_state_move(meta: SessionMeta, *, session_id: str, expected: int) -> tuple[list, object]:
    """What an append does to META's by_summary_state key (read META had ``expected`` turns).

    Only coverage depends on the turn count, and a summary covers at most the turns that exist:
    so an append changes the state only when the latest summary covered every turn (fresh →
    stale, and then it need not fear a concurrent summary: none can cover more). Otherwise the
    key stays — provided no summary covers the last turn by the time this commits, which is the
    condition returned (a summary that did wins the race; the re-read then sees it fresh)."""
    through = int(meta.summary_through or 0)
    if expected > 0 and through >= expected:
        return [SessionMeta.gsi8pk.set(summary_state_key(session_id=session_id, state=SummaryStates.STALE))], None
    if expected == 0:
        return [], None
    return [], SessionMeta.summary_through.does_not_exist() | (SessionMeta.summary_through < expected)


def turn_write(
    *,
    session_id: str,
    role: str,
    text: str,
    client_msg_id: str,
    model: str | None = None,
    latency_ms: float | None = None,
    tokens_in: int | None = None,
    tokens_out: int | None = None,
    meta: SessionMeta | None = None,
    author: str | None = None,
    as_owner: str | None = None,
) -> AppendResult:
    """Store one turn with the next sequence number, exactly once.

    One TransactWriteItems puts the turn and its client-message-id marker (both
    ``attribute_not_exists``) and advances META's ``turn_count`` guarded by the count we read, so
    concurrent writers can neither skip nor reuse a number. A writer that loses the race re-reads
    META (strongly consistent) and tries the next number. A retry with a client message id that is
    already stored returns the stored turn and writes nothing — even after the session closed
    (``ClientMsgIdConflict`` if the stored turn has another role or text).

    A write that committed although its answer was lost is this request's own write, not a
    replay: when DAX forwards the transaction, DynamoDB commits it and DAX then times out, the
    routed connection sends the same request to DynamoDB. Each attempt's transaction carries its
    own ``ClientRequestToken``, so a resend of the same bytes (botocore's retries) is answered as
    the success it was (DynamoDB keeps the token ten minutes); a resend that differs from what
    DAX forwarded is refused as a reused token, or fails its conditions. Either way the
    consistent re-read finds the marker, and the turn it points at is recognised as one of this
    call's attempts by its ``seq`` and ``created_at`` (taken per attempt, to the microsecond):
    then the result is ``created=True``, as if the answer had arrived.

    Ownership is part of the same condition: an ``assistant`` turn is written only while nobody
    owns the session (else ``BotPaused``), and a staff reply (role ``agent``, with ``author``) only
    while ``as_owner`` does (else ``NotOwner``) — so a bot reply racing a takeover lands before it
    or is refused, never after it.

    Does no Redis work: :func:`sessions_app.services.turn_append` wraps it with the rate limit,
    the session lock and cache invalidation.
    """
    validate_id(session_id, field="session_id")
    turn_validate(role=role, text=text, client_msg_id=client_msg_id, model=model, latency_ms=latency_ms,
                  tokens_in=tokens_in, tokens_out=tokens_out, author=author)
    if role == STAFF_ROLE and not as_owner:
        raise InvalidInput("a staff reply is written as the session's owner", field="as_owner")
    pk = keys.session_pk(session_id)
    meta = meta or session_get(session_id=session_id, consistent=True)
    attempts: set[tuple[int, datetime]] = set()  # (seq, created_at) of every turn this call tried to write

    def stored_result() -> AppendResult | None:
        stored = _stored_turn_for(session_id, client_msg_id, role=role, text=text)
        if stored is None:
            return None
        return AppendResult(turn=stored, created=(int(stored.seq), stored.created_at) in attempts, meta=meta)

    for attempt in range(MAX_ATTEMPTS):
        session_home_check(meta)  # also on every re-read: never write a session homed elsewhere
        if meta.status == SessionStatus.CLOSED:
            if (result := stored_result()) is not None:
                return result
            raise SessionClosed(f"session {session_id} is closed", field="session_id")
        if role == BOT_ROLE and meta.owner:
            if (result := stored_result()) is not None:
                return result
            raise BotPaused(f"{meta.owner_name or meta.owner} has taken this session over: the bot is paused until "
                            "they hand it back", field="session_id", owner=meta.owner_name or meta.owner,
                            since=keys.ts_str(meta.owner_since) if meta.owner_since else "")
        if role == STAFF_ROLE and meta.owner != as_owner:
            if (result := stored_result()) is not None:
                return result
            raise NotOwner("only the session's owner can reply; take it over first", field="session_id",
                           owner=meta.owner_name or meta.owner or "")
        expected = int(meta.turn_count)
        seq = expected + 1
        now = utcnow()
        turn = Turn(
            pk, keys.turn_sk(seq), seq=seq, role=role, text=text, created_at=now, client_msg_id=client_msg_id,
            # Microsecond resolution is plenty; it also keeps denormal floats (which DAX's encoder
            # rejects) out of the item.
            model=model, latency_ms=round(latency_ms, 3) if latency_ms is not None else None,
            tokens_in=tokens_in, tokens_out=tokens_out,
            expires_at=meta.expires_at or now + timedelta(days=settings.SESSION_TTL_DAYS),
            **({"author": author, "delivery_state": "pending", "delivery_attempts": 0} if role == STAFF_ROLE else {}),
        )
        condition = (SessionMeta.turn_count == expected) & (SessionMeta.status != SessionStatus.CLOSED)
        summary_key_actions, summary_condition = _summary_state_move(meta, session_id=session_id, expected=expected)
        if summary_condition is not None:
            condition &= summary_condition
        owner_actions = []
        if role == BOT_ROLE:
            condition &= SessionMeta.owner.does_not_exist()
        elif role == STAFF_ROLE:
            condition &= SessionMeta.owner == as_owner
            owner_actions = [SessionMeta.owner_active_at.set(now)]  # the owner's idle clock restarts
        marker = ClientMessageMarker(pk, keys.client_msg_sk(client_msg_id), seq=seq, expires_at=turn.expires_at)
        attempts.add((seq, now))
        try:
            with TransactWrite(connection=dynamo.connection(), client_request_token=uuid.uuid4().hex) as tx:
                tx.save(turn, condition=Turn.pk.does_not_exist())
                tx.save(marker, condition=ClientMessageMarker.pk.does_not_exist())
                tx.update(
                    SessionMeta(pk, keys.META_SK),
                    actions=[
                        SessionMeta.turn_count.set(seq),
                        SessionMeta.last_message_at.set(now),
                        # summary_due index: set once per unsummarised stretch (if_not_exists), so
                        # appends don't rewrite the index; cleared when a summary covers the last turn.
                        SessionMeta.summary_due_pk.set(SessionMeta.summary_due_pk | keys.summary_due_pk(session_id, settings.SUMMARY_DUE_SHARDS)),
                        SessionMeta.summary_due_sk.set(SessionMeta.summary_due_sk | keys.ts_str(now)),
                        app_write_mark(),
                        *owner_actions,
                        *usage_actions(meta, turn),
                        *summary_key_actions,
                    ],
                    condition=condition,
                )
        except TransactWriteError as exc:
            # A lost race is retried, and so is an attempt DynamoDB already saw through DAX;
            # anything else (validation, throttling, access) is not ours to retry here.
            if not (dynamo.is_race_lost(exc) or dynamo.is_token_reused(exc)):
                raise
            # Which condition failed is not always reported (DAX drops CancellationReasons), so
            # decide from a consistent re-read instead of from the error.
            log.debug("append to %s lost attempt %d: %s", session_id, attempt, exc.cause_response_code)
            if (result := stored_result()) is not None:
                return result
            meta = session_get(session_id=session_id, consistent=True)
            time.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
            continue
        return AppendResult(turn=turn, created=True, meta=meta)
    raise ConflictRetryExhausted(f"could not append to session {session_id}: too much contention; retry", field="session_id")


def turn_append(
    *,
    session_id: str,
    role: str,
    text: str,
    client_msg_id: str,
    model: str | None = None,
    latency_ms: float | None = None,
    tokens_in: int | None = None,
    tokens_out: int | None = None,
    author: str | None = None,
    as_owner: str | None = None,
) -> AppendResult:
    """The API's append: validate → per-session lock → META (consistent) → the customer's rate
    limit → :func:`turn_write` → raise the context-cache hint and drop cached contexts → enqueue
    a summary when one is due.

    Contract: exactly-once per ``client_msg_id`` (a replay returns the stored turn, also when the
    customer is rate limited or the session has closed since). Raises ``InvalidInput``,
    ``SessionNotFound``, ``SessionClosed``, ``SessionLocked`` (lock contended past
    ``SESSION_LOCK_WAIT``), ``RateLimited``, ``ClientMsgIdConflict`` (the id is stored for a turn
    with another role or text), ``WrongRegion`` (the session's home region is another one: nothing
    is written, not even a replay is answered). With Redis down the lock is skipped and the limiter
    fails open (both logged and counted); the conditional write keeps the sequence exact.
    """
    validate_id(session_id, field="session_id")
    fields = dict(role=role, text=text, client_msg_id=client_msg_id, model=model, latency_ms=latency_ms,
                  tokens_in=tokens_in, tokens_out=tokens_out, author=author)
    turn_validate(**fields)  # before taking the lock or spending the customer's rate budget
    # The lock comes first so the META we read inside it is the one we write against: reading
    # before waiting for a busy lock would make the first transaction lose by construction.
    with session_write_lock(session_id=session_id):
        meta = session_get(session_id=session_id, consistent=True)
        bind(session_id=session_id, customer_id=meta.customer_id)
        # Before the rate limit: a write refused here must not spend the customer's budget.
        session_home_check(meta)
        decision = None
        # The customer's budget is spent on what the customer's conversation produces: not on a
        # staff reply, nor on a bot reply that will be refused because staff own the session.
        paused = role == BOT_ROLE and meta.owner
        if meta.status != SessionStatus.CLOSED and role != STAFF_ROLE and not paused:
            decision = rate_limit_hit(customer_id=meta.customer_id)
            if not decision.allowed:
                stored = _stored_turn_for(session_id, client_msg_id, role=role, text=text)
                if stored is not None:
                    return AppendResult(turn=stored, created=False, meta=meta, rate=decision)
                decision.raise_if_denied()
        result = turn_write(session_id=session_id, meta=meta, as_owner=as_owner, **fields)
    if result.created:
        context_cache_turn_written(session_id=session_id, seq=int(result.turn.seq))
        turn_usage_record(role=result.turn.role, model=result.turn.model, latency_ms=result.turn.latency_ms,
                          tokens_in=result.turn.tokens_in, tokens_out=result.turn.tokens_out)
        # After the write returned (DynamoDB has it); summary_request never raises.
        if int(result.turn.seq) % settings.SUMMARY_EVERY_N_TURNS == 0:
            summary_request(session_id=session_id, reason="every_n_turns")
    else:
        # The first attempt may have committed and died before raising the hint (that is why the
        # client retried): without this, cached contexts would hide the turn until their TTL.
        context_cache_hint_raise(session_id=session_id, seq=int(result.turn.seq))
    return AppendResult(turn=result.turn, created=result.created, meta=result.meta, rate=decision)
