"""Writes to session META items: start, close, hand off."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from pynamodb.exceptions import PutError, UpdateError

from .. import dynamo, keys
from ..exceptions import InvalidInput, SessionIdTaken, WrongRegion
from ..models import CHANNELS, LOCALES, SessionMeta, SessionStatus, app_write_mark
from ..models.table import CustomerEntry
from ..realtime import context_cache_invalidate, presence_clear
from ..selectors.idle import session_last_activity
from ..selectors.sessions import session_get
from ..selectors.summaries import SummaryStates, summary_state_key
from ..clock import utcnow
from ..ids import validate_id
from ..observability.logs import bind
from .summaries import summary_request

MAX_TAGS = 20


def session_home_check(meta: SessionMeta) -> None:
    """Refuse (``WrongRegion``, 409) a write to a session homed in another region. Every writer
    that starts from META calls it before writing anything: replication between regions resolves
    concurrent writes to an item by last writer wins, so the turn sequence (META's turn count,
    advanced by a conditional transaction) is gap- and duplicate-free only while one region
    writes a session. Sessions without a home region (started before it was recorded) pass."""
    if not meta.writable_here:
        raise WrongRegion(f"session {meta.session_id} is written in {meta.home_region}, not {settings.AWS_REGION}: "
                          "send its traffic to its home region", field="session_id",
                          home_region=meta.home_region, region=settings.AWS_REGION)


def _session_key_fields(*, session_id: str, customer_id: str, channel: str, started_at: datetime, status: str) -> dict:
    started = keys.started_sk(started_at, session_id)
    fields = {
        "gsi1pk": keys.customer_pk(customer_id),
        "gsi1sk": started,
        "gsi2pk": keys.day_pk(started_at.date(), keys.shard_of(session_id, settings.DYNAMODB_DAY_SHARDS)),
        "gsi2sk": started,
        # by_session_prefix: written with META and never changed (selectors.lookup).
        "gsi9pk": keys.session_lookup_pk(session_id),
        "gsi9sk": keys.session_lookup_sk(session_id),
        "gsi5pk": keys.channel_day_pk(channel, started_at.date(), keys.shard_of(session_id, settings.DYNAMODB_CHANNEL_SHARDS)),
        "gsi5sk": started,
        "gsi3pk": None,
        "gsi3sk": None,
        # A new session (or an imported one) has no summary yet; the summary writers move it on.
        "gsi8pk": summary_state_key(session_id=session_id, state=SummaryStates.NONE),
        "gsi8sk": started,
    }
    if status in SessionStatus.INDEXED:
        fields["gsi3pk"] = keys.status_pk(status, keys.shard_of(session_id, settings.DYNAMODB_STATUS_SHARDS))
        fields["gsi3sk"] = started
    return fields


def customer_directory_record(*, customer_id: str, started_at: datetime) -> bool:
    """Put the customer in the customer directory (``CustomerEntry``, found by a case-insensitive
    prefix through ``by_customer_prefix``), or move its expiry forward to cover a session started
    at ``started_at``. Returns whether anything was written.

    One UpdateItem, conditional on the entry being new or expiring before this session does: the
    entry's ``ttl`` is the maximum of its sessions' (an older session, e.g. an import, never
    shortens it), so it lives as long as the customer's newest session. The index keys and the
    projected ``customer_id`` are the same on every write, so only a customer's first session
    writes the index; each later start costs the base item's write (1 WCU, also when the
    condition refuses it)."""
    expires = started_at + timedelta(days=settings.SESSION_TTL_DAYS)
    entry = CustomerEntry(keys.customer_item_pk(customer_id), keys.CUSTOMER_ITEM_SK)
    try:
        entry.update(
            actions=[CustomerEntry.type.set(CustomerEntry), CustomerEntry.customer_id.set(customer_id),
                     CustomerEntry.gsi10pk.set(keys.customer_lookup_pk(customer_id)),
                     CustomerEntry.gsi10sk.set(keys.customer_lookup_sk(customer_id)),
                     CustomerEntry.newest_started_at.set(started_at), CustomerEntry.expires_at.set(expires),
                     app_write_mark()],
            condition=CustomerEntry.pk.does_not_exist() | CustomerEntry.expires_at.does_not_exist()
            | (CustomerEntry.expires_at < expires),
        )
    except UpdateError as exc:
        if not dynamo.is_condition_failed(exc):
            raise
        return False  # already known, with an expiry at least as late
    return True


def session_start(
    *,
    customer_id: str,
    channel: str,
    locale: str = "en",
    tags: list[str] | tuple[str, ...] = (),
    session_id: str | None = None,
    started_at: datetime | None = None,
    status: str = SessionStatus.ACTIVE,
) -> tuple[SessionMeta, bool]:
    """Create a session's META item. Returns ``(meta, created)``.

    Idempotent when the caller supplies ``session_id``: a retry for the same customer returns the
    stored session with ``created=False``; the same id for another customer is refused."""
    validate_id(customer_id, field="customer_id")
    if channel not in CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    if locale not in LOCALES:
        raise InvalidInput(f"locale must be one of {', '.join(LOCALES)}", field="locale")
    if status not in (SessionStatus.ACTIVE, SessionStatus.HANDED_OFF):
        raise InvalidInput("a session starts active or handed_off", field="status")
    tags = list(dict.fromkeys(tags))
    if len(tags) > MAX_TAGS or any(not isinstance(t, str) or not 0 < len(t) <= 40 for t in tags):
        raise InvalidInput(f"tags: at most {MAX_TAGS} strings of 1-40 characters", field="tags")
    session_id = validate_id(session_id, field="session_id") if session_id else uuid.uuid4().hex
    bind(session_id=session_id, customer_id=customer_id)
    started_at = started_at or utcnow()

    # The directory first: a session whose META exists always has its customer in the directory
    # (a start that fails after this leaves an entry that expires like a session would).
    customer_directory_record(customer_id=customer_id, started_at=started_at)
    meta = SessionMeta(
        keys.session_pk(session_id),
        keys.META_SK,
        session_id=session_id,
        customer_id=customer_id,
        channel=channel,
        locale=locale,
        status=status,
        tags=tags,
        started_at=started_at,
        turn_count=0,
        summary_through=0,
        expires_at=started_at + timedelta(days=settings.SESSION_TTL_DAYS),
        home_region=settings.AWS_REGION,
        **_session_key_fields(session_id=session_id, customer_id=customer_id, channel=channel, started_at=started_at,
                               status=status),
    )
    try:
        meta.save(condition=SessionMeta.pk.does_not_exist())
    except PutError as exc:
        if not dynamo.is_condition_failed(exc):
            raise
        existing = session_get(session_id=session_id, consistent=True)
        if existing.customer_id != customer_id:
            raise SessionIdTaken("session_id is already used by another customer's session", field="session_id") from None
        # A retried start that reached another region: the bot's next write would be refused
        # there anyway, so say where the session lives now.
        session_home_check(existing)
        return existing, False
    return meta, True


def session_close(*, session_id: str, final_summary: bool = True) -> tuple[SessionMeta, bool]:
    """Close a session, for every entry point (the bot's API, the console, the admin, a privacy
    delete). Returns ``(meta, changed)``; closing a closed session changes nothing in DynamoDB.

    After the write: the cached bot contexts are dropped (their META says "active") and the
    session is marked offline — also on a repeated close, so a close retried after a crash
    between the write and this step still leaves nothing stale. Both degrade silently with
    Redis down (the cache entry then expires on its TTL). Enqueues a final summary when turns
    are not covered yet (never fails the close), unless ``final_summary`` is False: a privacy
    delete closes a session it is about to erase, and a summary of it would be work for nothing
    — or, written between two delete rounds, one more item to find."""
    meta, changed = _session_set_status(session_id=session_id, status=SessionStatus.CLOSED)
    _session_closed(meta, changed=changed, summary_reason="close" if final_summary else None)
    return meta, changed


def session_close_if_idle(*, meta: SessionMeta, idle_before: datetime) -> bool:
    """Close the session (the idle sweep) if it is still what ``meta`` — read strongly consistent
    by the caller — says: open, owned by nobody, and last active before ``idle_before``
    (``session_last_activity``). Returns whether it closed; False also when anything moved since
    the read. One UpdateItem conditional on the status, the turn count and ``last_message_at``
    that ``meta`` holds, and on no owner: a turn (or a take-over, a hand-off request) committed
    between the read and this write wins, and the session stays open — never closed under a
    customer who just wrote. After the close: the same clean-up and final summary as any close."""
    if meta.status == SessionStatus.CLOSED or meta.owner or not meta.writable_here \
            or session_last_activity(meta) >= idle_before:
        return False
    unchanged = (SessionMeta.status == meta.status) & (SessionMeta.turn_count == int(meta.turn_count or 0))
    unchanged &= SessionMeta.owner.does_not_exist()
    unchanged &= (SessionMeta.last_message_at == meta.last_message_at if meta.last_message_at
                  else SessionMeta.last_message_at.does_not_exist())
    try:
        meta.update(actions=_status_actions(meta, SessionStatus.CLOSED), condition=unchanged)
    except UpdateError as exc:
        if not dynamo.is_condition_failed(exc):
            raise
        return False
    _session_closed(meta, changed=True, summary_reason="idle_close")
    return True


def _session_closed(meta: SessionMeta, *, changed: bool, summary_reason: str | None) -> None:
    """What every close does after its write (see ``session_close``); no summary without a reason."""
    context_cache_invalidate(session_id=meta.session_id)
    presence_clear(session_id=meta.session_id)
    if summary_reason and changed and int(meta.turn_count or 0) > int(meta.summary_through or 0):
        summary_request(session_id=meta.session_id, reason=summary_reason)


def _session_set_status(*, session_id: str, status: str) -> tuple[SessionMeta, bool]:
    meta = session_get(session_id=session_id, consistent=True)
    session_home_check(meta)
    if meta.status == status:
        return meta, False
    if meta.status == SessionStatus.CLOSED:
        raise InvalidInput("a closed session cannot change status", field="status")
    try:
        # Guarded by the status we read, so two concurrent transitions cannot both apply.
        meta.update(actions=_status_actions(meta, status), condition=SessionMeta.status == meta.status)
    except UpdateError as exc:
        if not dynamo.is_condition_failed(exc):
            raise
        return _session_set_status(session_id=session_id, status=status)
    return meta, True


def _status_actions(meta: SessionMeta, status: str) -> list:
    """The META update that moves an open session to ``status`` (its by_status keys; a close also
    takes it out of the hand-off indexes)."""
    actions = [SessionMeta.status.set(status), app_write_mark()]
    fields = _session_key_fields(session_id=meta.session_id, customer_id=meta.customer_id, channel=meta.channel,
                                 started_at=meta.started_at, status=status)
    if fields["gsi3pk"] is None:
        actions += [SessionMeta.gsi3pk.remove(), SessionMeta.gsi3sk.remove(), SessionMeta.closed_at.set(utcnow()),
                    # A closed session is nobody's and waits for nobody (out of both hand-off indexes).
                    SessionMeta.gsi6pk.remove(), SessionMeta.gsi6sk.remove(), SessionMeta.gsi7pk.remove(),
                    SessionMeta.gsi7sk.remove(), SessionMeta.owner.remove()]
    else:
        actions += [SessionMeta.gsi3pk.set(fields["gsi3pk"]), SessionMeta.gsi3sk.set(fields["gsi3sk"])]
    return actions
