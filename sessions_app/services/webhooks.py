"""Delivering staff replies to the bot runtime through its webhook (BOT_WEBHOOK_URL).

The bot runtime owns the customer's WebSocket, so a staff reply (a turn with role ``agent``,
written by ``services.handoff.staff_reply``) reaches the customer by an outbound, signed HTTP POST
to the runtime. The turn itself records the delivery, where the console reads it:

====================  ===================================================================
``delivery_state``    meaning
====================  ===================================================================
``pending``           requested (``delivery_error`` ``"not queued: …"``: the broker refused
                      the task; ``webhook_delivery_retry`` asks again), or being retried
``delivered``         the receiver answered 2xx (``delivered_at``)
``failed``            a permanent refusal (4xx other than 408/429), or
                      ``BOT_WEBHOOK_MAX_ATTEMPTS`` attempts without a 2xx; ``delivery_error`` says why
``not_configured``    ``BOT_WEBHOOK_URL`` (or ``BOT_WEBHOOK_SECRET``) is not set: nothing is sent,
                      the reply is only stored and shown
====================  ===================================================================

``delivery_attempts`` counts the POSTs made for the turn since its last (re)request, and
``delivery_error`` holds the last attempt's error.

The request (README §"Staff replies: the bot webhook" documents it for receivers): body
``{"type": "staff_reply", "session_id", "seq", "role": "agent", "author", "text", "created_at",
"idempotency_key"}`` (compact JSON, UTF-8), headers ``X-MangaAssist-Idempotency-Key``
(``<session_id>:<seq>``, the same on every attempt), ``X-MangaAssist-Timestamp`` (unix seconds)
and ``X-MangaAssist-Signature: v1=<hex HMAC-SHA256(secret, b"<timestamp>." + raw body)>``.

Delivery is at least once: every attempt claims its number on the turn with a conditional
update first (two copies of the task cannot both make attempt *n*), but a worker that dies after
the receiver answered and before the turn says so sends the reply again — with the same
idempotency key, which the receiver uses to drop the repeat. Every write here is an UpdateItem on
the turn item, conditional on the item existing (a privacy delete may have removed it) and on the
state it expects, and carries ``app_write_mark``. The reply's text and the secret are never logged
nor recorded in an error.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from pynamodb.exceptions import DoesNotExist, GetError, UpdateError

from .. import dynamo, keys
from ..clock import utcnow
from ..exceptions import InvalidInput, QueueUnavailable
from ..jobs import task_publish
from ..models import Turn, app_write_mark
from ..observability import metrics
from .turns import STAFF_ROLE

log = logging.getLogger(__name__)

TASK_NAME = "sessions_app.webhook_deliver"
EVENT_TYPE = "staff_reply"
SIGNATURE_VERSION = "v1"
HEADER_IDEMPOTENCY_KEY = "X-MangaAssist-Idempotency-Key"
HEADER_TIMESTAMP = "X-MangaAssist-Timestamp"
HEADER_SIGNATURE = "X-MangaAssist-Signature"
USER_AGENT = "MangaAssist-Webhook/1"
MAX_ERROR_CHARS = 500
# Backoff between attempts: BOT_WEBHOOK_BACKOFF_SECONDS * 2**(attempt-1), capped here (below the
# Redis broker's visibility timeout, which would redeliver a task held longer), jittered down to
# half of it so retries of many replies spread out.
BACKOFF_CAP_SECONDS = 300.0
# Status codes in the 4xx range that mean "try again later", not "this request is wrong".
RETRYABLE_4XX = frozenset({408, 429})


class DeliveryStates:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True)
class DeliveryOutcome:
    """What one run of the delivery task did. ``retry_in`` set: attempt again after that many
    seconds (the task schedules it)."""

    status: str  # delivered, already_delivered, retry, failed, not_configured, skipped, superseded, missing
    session_id: str
    seq: int
    attempt: int = 0
    error: str | None = None
    retry_in: float | None = None


# --- the request ------------------------------------------------------------------------------

def idempotency_key(*, session_id: str, seq: int) -> str:
    """Stable per turn: every attempt (and every redelivery) of one reply carries the same key."""
    return f"{session_id}:{int(seq)}"


def webhook_signature(*, secret: str, timestamp: int | str, body: bytes) -> str:
    """The ``X-MangaAssist-Signature`` value: ``v1=`` + hex HMAC-SHA256 over
    ``b"<timestamp>." + body`` keyed with the UTF-8 secret."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return f"{SIGNATURE_VERSION}={mac.hexdigest()}"


def signed_headers(*, secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The headers of a signed POST of ``body``: content type, user agent, the timestamp (unix
    seconds, now unless given) and the signature over it. The alert webhook (services.alerts)
    signs with these too, so one receiver's verification serves both."""
    timestamp = int(time.time()) if timestamp is None else int(timestamp)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: webhook_signature(secret=secret, timestamp=timestamp, body=body),
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def webhook_body(*, session_id: str, turn: Turn) -> bytes:
    """The request body: compact JSON, UTF-8. Signed as sent: receivers verify the raw bytes."""
    payload = {
        "type": EVENT_TYPE,
        "session_id": session_id,
        "seq": int(turn.seq),
        "role": turn.role,
        "author": turn.author,
        "text": turn.text,
        "created_at": _iso(turn.created_at),
        "idempotency_key": idempotency_key(session_id=session_id, seq=int(turn.seq)),
    }
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer (non-2xx), not an instruction: a POST body is not re-sent elsewhere."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


@dataclass(frozen=True)
class WebhookResponse:
    """One POST's result: ``ok`` (2xx), or not, ``permanent`` when asking again cannot help."""

    ok: bool
    permanent: bool
    error: str | None
    retry_after: float | None = None


def _retry_after(value: str | None) -> float | None:
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # an HTTP date: not worth parsing, the backoff applies
        return None
    return seconds if seconds is not None and seconds >= 0 else None


def webhook_post(*, url: str, body: bytes, headers: dict[str, str], timeout: float) -> WebhookResponse:
    """POST ``body`` once. Redirects are not followed and the receiver's body is never read into
    an error; a 4xx other than 408/429 (or a malformed URL) is ``permanent``."""
    try:
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        with _opener.open(request, timeout=timeout) as response:
            response.read(65536)  # drain a little so the connection closes cleanly; never stored
            return WebhookResponse(ok=True, permanent=False, error=None)
    except urllib.error.HTTPError as exc:  # any non-2xx (redirects are not followed)
        status = exc.code
        retry_after = _retry_after(exc.headers.get("Retry-After") if exc.headers else None)
        exc.close()  # the body is the receiver's business: never read into an error or a log
        reason = f"HTTP {status}" + (f" {exc.reason}" if exc.reason else "")
        if 400 <= status < 500 and status not in RETRYABLE_4XX:
            return WebhookResponse(ok=False, permanent=True,
                                   error=f"{reason} (permanent: the receiver refused this request; not retried)")
        return WebhookResponse(ok=False, permanent=False, error=reason, retry_after=retry_after)
    except urllib.error.URLError as exc:
        return WebhookResponse(ok=False, permanent=False, error=f"connection error: {exc.reason}")
    except (OSError, ValueError) as exc:  # timeouts, resets, a malformed URL from the settings
        return WebhookResponse(ok=False, permanent=isinstance(exc, ValueError), error=f"{type(exc).__name__}: {exc}")


def backoff_seconds(attempt: int, *, base: float | None = None) -> float:
    """Delay before attempt ``attempt + 1``: exponential from BOT_WEBHOOK_BACKOFF_SECONDS, capped
    at BACKOFF_CAP_SECONDS, with jitter in [half, full]."""
    base = settings.BOT_WEBHOOK_BACKOFF_SECONDS if base is None else base
    delay = min(BACKOFF_CAP_SECONDS, base * 2 ** max(0, attempt - 1))
    return random.uniform(delay / 2, delay)


# --- turn updates -----------------------------------------------------------------------------

def _turn_read(session_id: str, seq: int) -> Turn | None:
    try:
        return Turn.get(keys.session_pk(session_id), keys.turn_sk(int(seq)), consistent_read=True)
    except DoesNotExist:
        return None
    except GetError as exc:
        raise dynamo.store_unavailable("GetItem", exc) or exc


def _turn_update(session_id: str, seq: int, *, actions: list, condition) -> bool:
    """One conditional UpdateItem on the turn; False when its condition did not hold. The item must
    exist: an UpdateItem on a deleted turn would otherwise create a stub of it."""
    try:
        Turn(keys.session_pk(session_id), keys.turn_sk(int(seq))).update(
            actions=[*actions, app_write_mark()], condition=Turn.pk.exists() & condition)
    except UpdateError as exc:
        if dynamo.is_condition_failed(exc):
            return False
        raise dynamo.store_unavailable("UpdateItem", exc) or exc
    return True


def _error_text(error: str) -> str:
    return error[:MAX_ERROR_CHARS]


def _configuration_missing() -> str | None:
    if not settings.BOT_WEBHOOK_URL:
        return "BOT_WEBHOOK_URL is not set"
    if not settings.BOT_WEBHOOK_SECRET:
        return "BOT_WEBHOOK_SECRET is not set: replies are never sent unsigned"
    return None


def _mark_not_configured(session_id: str, seq: int, why: str) -> bool:
    return _turn_update(session_id, seq, actions=[Turn.delivery_state.set(DeliveryStates.NOT_CONFIGURED),
                                                  Turn.delivery_error.set(_error_text(why))],
                        condition=Turn.delivery_state == DeliveryStates.PENDING)


# --- requests ---------------------------------------------------------------------------------

def webhook_delivery_request(*, session_id: str, seq: int) -> str | None:
    """Enqueue the delivery of staff reply ``seq`` of ``session_id`` (never raises).

    Returns the task id, or None when nothing was queued: the webhook is not configured (the turn
    says ``not_configured``, not a ``pending`` that would never end), or the broker refused (the
    turn stays ``pending`` with ``delivery_error`` ``"not queued: …"``; ``webhook_delivery_retry``
    asks again). It runs after the reply is stored, which it must never fail.
    """
    try:
        missing = _configuration_missing()
        if missing:
            _mark_not_configured(session_id, seq, missing)
            log.info("webhook delivery of %s turn %s: not configured (%s)", session_id, seq, missing)
            return None
        task_id = uuid.uuid4().hex
        try:
            task_publish(name=TASK_NAME, args=[session_id, int(seq)], task_id=task_id)
        except QueueUnavailable as exc:
            log.warning("could not enqueue webhook delivery of %s turn %s: %s", session_id, seq, exc)
            _turn_update(session_id, seq, actions=[Turn.delivery_error.set(_error_text(f"not queued: {exc.message}"))],
                         condition=Turn.delivery_state == DeliveryStates.PENDING)
            return None
        log.info("webhook delivery of %s turn %s requested: task %s", session_id, seq, task_id)
        return task_id
    except Exception:  # the store away while marking: the reply is stored, the console shows pending
        log.exception("webhook delivery request of %s turn %s failed", session_id, seq)
        return None


def webhook_delivery_retry(*, session_id: str, seq: int) -> str:
    """The console's "deliver again": a staff reply that failed, was not queued or was not
    configured goes back to ``pending`` with a fresh attempt budget and is requested again.

    Returns the turn's state afterwards: ``pending`` (requested; also when the broker refused,
    with the turn saying so), ``delivered`` (it already was: nothing is sent twice) or
    ``not_configured``. Raises ``InvalidInput`` for a turn that does not exist or is not a staff
    reply, ``StoreUnavailable`` when the table cannot be reached.
    """
    turn = _turn_read(session_id, seq)
    if turn is None or turn.role != STAFF_ROLE:
        raise InvalidInput(f"turn {seq} of session {session_id} is not a staff reply", field="seq")
    if turn.delivery_state == DeliveryStates.DELIVERED:
        return DeliveryStates.DELIVERED
    reset = _turn_update(
        session_id, seq,
        actions=[Turn.delivery_state.set(DeliveryStates.PENDING), Turn.delivery_attempts.set(0),
                 Turn.delivery_error.remove()],
        condition=Turn.delivery_state.does_not_exist() | (Turn.delivery_state != DeliveryStates.DELIVERED))
    if not reset:  # delivered in the meantime
        return DeliveryStates.DELIVERED
    webhook_delivery_request(session_id=session_id, seq=seq)
    return (_turn_read(session_id, seq) or turn).delivery_state


# --- delivery (the task's body) ---------------------------------------------------------------

def webhook_deliver(*, session_id: str, seq: int) -> DeliveryOutcome:
    """Make the next delivery attempt of staff reply ``seq`` and record it on the turn.

    Idempotent: a turn already delivered (or failed, or not a pending staff reply) is left alone.
    The attempt number is claimed on the turn before the POST (``delivery_attempts`` moves from
    n-1 to n, conditionally), so a second copy of the task running at the same time drops out
    (``superseded``). Returns ``retry`` with ``retry_in`` while attempts remain; the task schedules
    the next one. Raises ``StoreUnavailable`` (the task retries it).
    """
    seq = int(seq)

    def outcome(status: str, **kw) -> DeliveryOutcome:
        return DeliveryOutcome(status=status, session_id=session_id, seq=seq, **kw)

    turn = _turn_read(session_id, seq)
    if turn is None:
        return outcome("missing")
    if turn.role != STAFF_ROLE:
        return outcome("skipped", error="not a staff reply")
    if turn.delivery_state == DeliveryStates.DELIVERED:
        return outcome("already_delivered", attempt=int(turn.delivery_attempts or 0))
    if turn.delivery_state != DeliveryStates.PENDING:
        return outcome("skipped", attempt=int(turn.delivery_attempts or 0), error=f"state {turn.delivery_state}")
    missing = _configuration_missing()
    if missing:
        _mark_not_configured(session_id, seq, missing)
        return outcome(DeliveryStates.NOT_CONFIGURED, error=missing)

    previous = int(turn.delivery_attempts or 0)
    attempt = previous + 1
    claimed = _turn_update(
        session_id, seq, actions=[Turn.delivery_attempts.set(attempt)],
        condition=(Turn.delivery_state == DeliveryStates.PENDING)
        & ((Turn.delivery_attempts == previous) | Turn.delivery_attempts.does_not_exist()))
    if not claimed:
        return outcome("superseded", attempt=attempt)

    body = webhook_body(session_id=session_id, turn=turn)
    key = idempotency_key(session_id=session_id, seq=seq)
    headers = {**signed_headers(secret=settings.BOT_WEBHOOK_SECRET, body=body), HEADER_IDEMPOTENCY_KEY: key}
    started = time.monotonic()
    response = webhook_post(url=settings.BOT_WEBHOOK_URL, body=body, headers=headers,
                            timeout=settings.BOT_WEBHOOK_TIMEOUT)
    elapsed_ms = (time.monotonic() - started) * 1000

    if response.ok:
        metrics.count(metrics.WEBHOOK_DELIVERIES, "bot", "delivered")
        _turn_update(session_id, seq,
                     actions=[Turn.delivery_state.set(DeliveryStates.DELIVERED), Turn.delivered_at.set(utcnow()),
                              Turn.delivery_error.remove()],
                     condition=Turn.delivery_state != DeliveryStates.DELIVERED)
        log.info("webhook delivered %s turn %s (attempt %d, %.0f ms)", session_id, seq, attempt, elapsed_ms)
        return outcome(DeliveryStates.DELIVERED, attempt=attempt)

    error = response.error or "unknown error"
    max_attempts = settings.BOT_WEBHOOK_MAX_ATTEMPTS
    if response.permanent or attempt >= max_attempts:
        metrics.count(metrics.WEBHOOK_DELIVERIES, "bot", "gave_up")
        final = error if response.permanent else f"{error} (gave up after {attempt} attempts)"
        _turn_update(session_id, seq,
                     actions=[Turn.delivery_state.set(DeliveryStates.FAILED), Turn.delivery_error.set(_error_text(final))],
                     condition=(Turn.delivery_state == DeliveryStates.PENDING) & (Turn.delivery_attempts == attempt))
        log.warning("webhook delivery of %s turn %s failed for good (attempt %d of %d): %s",
                    session_id, seq, attempt, max_attempts, error)
        return outcome(DeliveryStates.FAILED, attempt=attempt, error=final)

    metrics.count(metrics.WEBHOOK_DELIVERIES, "bot", "failed")  # another attempt follows
    _turn_update(session_id, seq, actions=[Turn.delivery_error.set(_error_text(error))],
                 condition=(Turn.delivery_state == DeliveryStates.PENDING) & (Turn.delivery_attempts == attempt))
    delay = backoff_seconds(attempt)
    if response.retry_after is not None:
        delay = max(delay, min(response.retry_after, BACKOFF_CAP_SECONDS))
    log.info("webhook delivery of %s turn %s: attempt %d of %d failed (%s); next in %.1f s",
             session_id, seq, attempt, max_attempts, error, delay)
    return outcome("retry", attempt=attempt, error=error, retry_in=delay)
