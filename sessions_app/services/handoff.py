"""Hand-off to a human: the bot asks, staff take over, reply and hand back.

States (``selectors.handoff.handoff_state``): ``bot`` (status active), ``waiting`` (handed off,
nobody owns it: in the ``handoff_queue`` index), ``human`` (handed off and owned: in ``by_owner``;
the bot's turns are refused by the append transaction's condition). Every transition is one
UpdateItem conditional on the state it starts from, so two staff taking over at once get one
owner, and the other a clear ``AlreadyOwned`` naming them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from pynamodb.exceptions import UpdateError

from .. import dynamo, keys
from ..clock import utcnow
from ..exceptions import AlreadyOwned, InvalidInput, NotHandedOff, NotOwner, SessionClosed
from ..models import SessionMeta, SessionStatus, app_write_mark
from ..realtime import context_cache_invalidate
from ..selectors.handoff import sessions_owned
from ..selectors.sessions import session_get
from .sessions import session_home_check
from .turns import STAFF_ROLE, AppendResult, turn_append
from .webhooks import webhook_delivery_request

MAX_REASON_CHARS = 200
MAX_NOTE_CHARS = 2000


def _queue_keys(meta: SessionMeta, waiting_since: datetime) -> list:
    shard = keys.shard_of(meta.session_id, settings.DYNAMODB_STATUS_SHARDS)
    return [SessionMeta.gsi6pk.set(keys.waiting_pk(shard)), SessionMeta.gsi6sk.set(keys.started_sk(waiting_since, meta.session_id))]


def _status_keys(meta: SessionMeta, status: str) -> list:
    shard = keys.shard_of(meta.session_id, settings.DYNAMODB_STATUS_SHARDS)
    return [SessionMeta.status.set(status), SessionMeta.gsi3pk.set(keys.status_pk(status, shard)),
            SessionMeta.gsi3sk.set(keys.started_sk(meta.started_at, meta.session_id))]


def _update(meta: SessionMeta, actions: list, condition) -> bool:
    """Apply a guarded transition; False when its condition failed (someone moved first)."""
    try:
        meta.update(actions=[*actions, app_write_mark()], condition=condition)
    except UpdateError as exc:
        if not dynamo.is_condition_failed(exc):
            raise
        return False
    return True


def _after(session_id: str) -> None:
    # The bot's cached contexts carry the hand-off state: the next read must see the new one.
    context_cache_invalidate(session_id=session_id)


def handoff_request(*, session_id: str, reason: str, note: str | None = None) -> tuple[SessionMeta, bool]:
    """The bot asks for a human: the session becomes ``handed_off``, unowned, and waits in the
    queue. Idempotent: asking again while it waits or is owned changes nothing (``False``)."""
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"reason must be 1-{MAX_REASON_CHARS} characters", field="reason")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        raise InvalidInput(f"note must be at most {MAX_NOTE_CHARS} characters", field="note")
    while True:
        meta = session_get(session_id=session_id, consistent=True)
        session_home_check(meta)
        if meta.status == SessionStatus.CLOSED:
            raise SessionClosed(f"session {session_id} is closed", field="session_id")
        if meta.status == SessionStatus.HANDED_OFF:
            return meta, False
        now = utcnow()
        actions = [*_status_keys(meta, SessionStatus.HANDED_OFF), *_queue_keys(meta, now),
                   SessionMeta.handoff_reason.set(reason.strip()), SessionMeta.handoff_at.set(now)]
        actions.append(SessionMeta.handoff_note.set(note) if note else SessionMeta.handoff_note.remove())
        if _update(meta, actions, SessionMeta.status == SessionStatus.ACTIVE):
            _after(session_id)
            return session_get(session_id=session_id, consistent=True), True


def handoff_take(*, session_id: str, username: str, display_name: str) -> SessionMeta:
    """A staff member takes the session over (from the queue, or from a colleague's lapsed hold).
    Raises ``AlreadyOwned`` (someone else owns it), ``NotHandedOff`` (the bot has it: only a
    session that asked for a human is taken over), ``SessionClosed``. Taking over one's own
    session again changes nothing."""
    meta = session_get(session_id=session_id, consistent=True)
    session_home_check(meta)
    if meta.status == SessionStatus.CLOSED:
        raise SessionClosed(f"session {session_id} is closed", field="session_id")
    if meta.owner == username:
        return meta
    if meta.owner:
        raise AlreadyOwned(f"already taken over by {meta.owner_name or meta.owner}", field="session_id",
                           owner=meta.owner_name or meta.owner)
    if meta.status != SessionStatus.HANDED_OFF:
        raise NotHandedOff("the bot has this session: it can be taken over once it asks for a human",
                           field="session_id")
    now = utcnow()
    actions = [SessionMeta.owner.set(username), SessionMeta.owner_name.set(display_name),
               SessionMeta.owner_since.set(now), SessionMeta.owner_active_at.set(now),
               SessionMeta.gsi6pk.remove(), SessionMeta.gsi6sk.remove(),
               SessionMeta.gsi7pk.set(keys.owner_pk(username)), SessionMeta.gsi7sk.set(keys.started_sk(now, session_id))]
    if not _update(meta, actions, SessionMeta.owner.does_not_exist() & (SessionMeta.status == SessionStatus.HANDED_OFF)):
        # Someone moved first: say who (or what) from a fresh read.
        return handoff_take(session_id=session_id, username=username, display_name=display_name)
    _after(session_id)
    return session_get(session_id=session_id, consistent=True)


def handoff_release(*, session_id: str, username: str, force: bool = False) -> SessionMeta:
    """Hand the session back to the bot (status active, nobody owns it, out of the queue).
    Only its owner may, unless ``force`` (a supervisor handing back someone else's session, or
    one that waits). Raises ``NotOwner``, ``SessionClosed``."""
    meta = session_get(session_id=session_id, consistent=True)
    session_home_check(meta)
    if meta.status == SessionStatus.CLOSED:
        raise SessionClosed(f"session {session_id} is closed", field="session_id")
    if meta.status == SessionStatus.ACTIVE:
        return meta
    if meta.owner != username and not force:
        raise NotOwner(f"{meta.owner_name or meta.owner or 'nobody'} owns this session; only they can hand it back",
                       field="session_id", owner=meta.owner_name or meta.owner or "")
    actions = [*_status_keys(meta, SessionStatus.ACTIVE), SessionMeta.owner.remove(), SessionMeta.owner_name.remove(),
               SessionMeta.owner_since.remove(), SessionMeta.owner_active_at.remove(), SessionMeta.gsi6pk.remove(),
               SessionMeta.gsi6sk.remove(), SessionMeta.gsi7pk.remove(), SessionMeta.gsi7sk.remove()]
    guard = SessionMeta.status == SessionStatus.HANDED_OFF
    guard &= (SessionMeta.owner == meta.owner) if meta.owner else SessionMeta.owner.does_not_exist()
    if not _update(meta, actions, guard):
        return handoff_release(session_id=session_id, username=username, force=force)
    _after(session_id)
    return session_get(session_id=session_id, consistent=True)


def handoff_lapse(*, session_id: str, idle_before: datetime) -> bool:
    """Return an owned session whose owner has been idle since before ``idle_before`` to the
    queue (not to the bot: the customer still waits for a human). Returns whether it lapsed."""
    meta = session_get(session_id=session_id, consistent=True)
    if not meta.writable_here:
        return False  # the sweep of the session's home region lapses it
    if not meta.owner or meta.status != SessionStatus.HANDED_OFF or not meta.owner_active_at \
            or meta.owner_active_at >= idle_before:
        return False
    actions = [SessionMeta.owner.remove(), SessionMeta.owner_name.remove(), SessionMeta.owner_since.remove(),
               SessionMeta.owner_active_at.remove(), SessionMeta.gsi7pk.remove(), SessionMeta.gsi7sk.remove(),
               *_queue_keys(meta, meta.handoff_at or utcnow())]
    if not _update(meta, actions, (SessionMeta.owner == meta.owner) & (SessionMeta.owner_active_at == meta.owner_active_at)):
        return False
    _after(session_id)
    return True


def handoff_lapse_idle(*, now: datetime | None = None) -> int:
    """The beat sweep: every owned session idle for ``HANDOFF_IDLE_MINUTES`` goes back to the
    queue. Found through the by_status index (handed-off sessions only), never a Scan."""
    idle_before = (now or utcnow()) - timedelta(minutes=settings.HANDOFF_IDLE_MINUTES)
    return sum(handoff_lapse(session_id=m.session_id, idle_before=idle_before)
               for m in sessions_owned() if m.owner_active_at and m.owner_active_at < idle_before)


def staff_reply(*, session_id: str, username: str, display_name: str, text: str) -> AppendResult:
    """A staff member's reply: a turn with role ``agent`` and their display name, written only
    while they own the session (``NotOwner`` otherwise), length-checked like any turn. Delivery
    to the bot runtime is the webhook's job (its state starts ``pending`` on the turn)."""
    result = turn_append(session_id=session_id, role=STAFF_ROLE, text=text, client_msg_id=f"staff-{uuid.uuid4().hex}",
                         author=display_name, as_owner=username)
    webhook_delivery_request(session_id=session_id, seq=int(result.turn.seq))
    return result
