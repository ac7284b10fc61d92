"""Staff actions from the console and the admin: close, regenerate a summary, export, privacy delete.

Every action writes one ``AuditLog`` row — who, what, which session/customer, when, outcome —
also when it fails, so the log answers "who tried what" and not only "what succeeded".
"""

from __future__ import annotations

import importlib
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser

from .. import keys
from ..exceptions import InvalidInput, MangaAssistError, RedisUnavailable, SessionNotFound
from ..models import AuditLog, ChatItem, SessionMeta
from ..realtime import context_cache_invalidate, presence_clear, realtime_forget_session, realtime_keys_for_session
from ..clock import utcnow
from ..ids import validate_id
from ..selectors.sessions import session_get
from .sessions import session_close

log = logging.getLogger(__name__)

# DAX's item and query caches keep entries for their TTL (5 minutes unless the cluster's
# parameter group says otherwise) and a delete through DynamoDB does not evict them:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/DAX.concepts.html#DAX.concepts.item-cache
DAX_DEFAULT_TTL_SECONDS = 300
DELETE_ROUNDS = 3


class ActionUnavailable(MangaAssistError):
    code = "action_unavailable"
    http_status = 503


def audit_record(
    *,
    actor: AbstractBaseUser | None,
    action: str,
    outcome: str,
    session_id: str = "",
    customer_id: str = "",
    detail: dict | None = None,
) -> AuditLog:
    """Append one audit row. ``actor_username`` is copied so the row survives the user's deletion."""
    return AuditLog.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_username=getattr(actor, "username", "") or "",
        action=action,
        outcome=outcome[:20],
        session_id=session_id or "",
        customer_id=customer_id or "",
        detail=detail or {},
    )


def _audited(*, actor, action: str, session_id: str = "", customer_id: str = "", detail: dict | None = None):
    """Context manager body shared by the actions: record "error" with the message on failure."""

    class _Audit:
        def __enter__(self):
            self.outcome, self.detail = "ok", dict(detail or {})
            self.customer_id = customer_id
            return self

        def __exit__(self, exc_type, exc, tb):
            if exc is not None:
                code = getattr(exc, "code", type(exc).__name__)
                self.outcome = "error"
                self.detail["error"] = f"{code}: {getattr(exc, 'message', exc)}"[:500]
            audit_record(actor=actor, action=action, outcome=self.outcome, session_id=session_id,
                         customer_id=self.customer_id, detail=self.detail)
            return False

    return _Audit()


def staff_session_close(*, actor: AbstractBaseUser, session_id: str) -> tuple[SessionMeta, bool]:
    """Close the session (idempotent) and drop its cached bot context, whose META says "active"."""
    with _audited(actor=actor, action="session_close", session_id=session_id) as audit:
        meta, changed = session_close(session_id=session_id)
        audit.customer_id = meta.customer_id
        audit.detail["changed"] = changed
        context_cache_invalidate(session_id=session_id)
        presence_clear(session_id=session_id)
    return meta, changed


def staff_summary_request(*, actor: AbstractBaseUser, session_id: str) -> str | None:
    """Ask the summary service for a fresh summary. Returns the task id, or None when the broker
    could not take the task (audited as "not_queued"; the summary sweep will ask again)."""
    with _audited(actor=actor, action="summary_request", session_id=session_id) as audit:
        try:
            summaries = importlib.import_module("sessions_app.services.summaries")
        except ImportError:
            raise ActionUnavailable("summary regeneration is not available yet") from None
        meta = session_get(session_id=session_id)  # a missing session is a 404, not a queued task
        audit.customer_id = meta.customer_id
        task_id = summaries.summary_request(session_id=session_id, reason="staff")
        audit.detail["task_id"] = task_id
        if task_id is None:
            audit.outcome = "not_queued"
    return task_id


def staff_export_record(*, actor: AbstractBaseUser, fmt: str, scope: str, session_id: str = "",
                        customer_id: str = "", filters: dict | None = None) -> AuditLog:
    """Audit an export before it streams (a stream that breaks half-way has still exposed data)."""
    return audit_record(actor=actor, action=f"export_{fmt}", outcome="streamed", session_id=session_id,
                        customer_id=customer_id, detail={"scope": scope, "filters": filters or {}})


# --- privacy delete -------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeletePlan:
    session_id: str
    customer_id: str | None  # None when META is already gone
    items: dict[str, int]  # item type -> count
    redis_keys: list[str] | None  # None: Redis unavailable

    @property
    def item_total(self) -> int:
        return sum(self.items.values())


@dataclass(frozen=True)
class DeleteReceipt:
    session_id: str
    customer_id: str | None
    items_deleted: dict[str, int]
    redis_keys_deleted: int | None
    redis_error: str | None
    verified_empty: bool
    completed_at: datetime
    dax_ttl_seconds: int
    dax_clear_by: datetime

    @property
    def complete(self) -> bool:
        return self.verified_empty and self.redis_error is None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["completed_at"] = self.completed_at.isoformat()
        data["dax_clear_by"] = self.dax_clear_by.isoformat()
        data["complete"] = self.complete
        return data


def _partition(*, session_id: str) -> list[ChatItem]:
    """Every item of the session: one Query on its partition (strongly consistent, keys only)."""
    return list(ChatItem.query(keys.session_pk(session_id), consistent_read=True, attributes_to_get=["PK", "SK", "type"]))


def _kind(item: ChatItem) -> str:
    return type(item).__name__


def privacy_delete_plan(*, session_id: str) -> DeletePlan:
    """The dry run: what a privacy delete would remove, read-only."""
    validate_id(session_id, field="session_id")
    items = _partition(session_id=session_id)
    if not items:
        raise SessionNotFound(f"session {session_id} has no stored items", field="session_id")
    customer_id = None
    try:
        customer_id = SessionMeta.get(keys.session_pk(session_id), keys.META_SK, consistent_read=True).customer_id
    except SessionMeta.DoesNotExist:
        pass
    try:
        redis_keys = realtime_keys_for_session(session_id=session_id)
    except RedisUnavailable:
        redis_keys = None
    return DeletePlan(session_id=session_id, customer_id=customer_id, items=dict(Counter(_kind(i) for i in items)),
                      redis_keys=redis_keys)


def privacy_delete_execute(*, actor: AbstractBaseUser, session_id: str, confirm: str) -> DeleteReceipt:
    """Delete every DynamoDB item and Redis key of the session, then prove the partition is empty.

    ``confirm`` must repeat the session id (the console's type-to-confirm). The session is closed
    first so the bot refuses new turns; the partition is Queried and removed with BatchWriteItem
    (PynamoDB retries unprocessed items), then re-Queried with ConsistentRead — a turn that landed
    meanwhile is caught and deleted in the next round. Redis down: the store delete still happens
    and the receipt says the Redis keys were not removed (they expire on their TTLs).
    DAX is not told: its caches may serve copies for up to their TTL; the receipt states until when.
    """
    validate_id(session_id, field="session_id")
    with _audited(actor=actor, action="privacy_delete", session_id=session_id) as audit:
        if confirm != session_id:
            raise InvalidInput("type the session id to confirm the delete", field="confirm")
        customer_id = None
        try:
            meta, _ = session_close(session_id=session_id)
            customer_id = meta.customer_id
        except SessionNotFound:
            pass  # META already gone (a retried delete): still clear the rest
        audit.customer_id = customer_id or ""
        deleted: Counter[str] = Counter()
        remaining: list[ChatItem] = []
        for _ in range(DELETE_ROUNDS):
            items = _partition(session_id=session_id)
            if not items:
                break
            with ChatItem.batch_write() as batch:
                for item in items:
                    batch.delete(item)
            deleted.update(_kind(i) for i in items)
        remaining = _partition(session_id=session_id)
        redis_deleted, redis_error = None, None
        try:
            redis_deleted = realtime_forget_session(session_id=session_id)
        except RedisUnavailable as exc:
            redis_error = exc.message
        completed = utcnow()
        receipt = DeleteReceipt(
            session_id=session_id, customer_id=customer_id, items_deleted=dict(deleted),
            redis_keys_deleted=redis_deleted, redis_error=redis_error, verified_empty=not remaining,
            completed_at=completed, dax_ttl_seconds=DAX_DEFAULT_TTL_SECONDS,
            dax_clear_by=completed + timedelta(seconds=DAX_DEFAULT_TTL_SECONDS),
        )
        audit.outcome = "ok" if receipt.complete else "incomplete"
        audit.detail["receipt"] = receipt.as_dict()
    return receipt
