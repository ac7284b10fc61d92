"""Privacy deletes: one session, or everything of one customer (a data-subject request is per
person). Both are audited, need the id typed again to confirm, and answer with a receipt.

A session is erased the same way either way: closed first so the bot refuses new turns, its
partition Queried and removed with BatchWriteItem (PynamoDB retries unprocessed items), then
re-Queried with ConsistentRead — a turn that landed meanwhile is caught and deleted in the next
round — and its Redis keys deleted. Redis down: the store delete still happens and the receipt
says the Redis keys were not removed (they expire on their TTLs). DAX is not told: its caches
may serve copies for up to their TTL; the receipt states until when. The search index loses the
session's documents in the same action and keeps a tombstone, so the change feed's copies still
on their way cannot bring it back; the receipt counts the documents (or says why not).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser

from ..clock import utcnow
from ..exceptions import InvalidInput, RedisUnavailable, SessionNotFound
from ..ids import validate_id
from .. import keys
from ..models import ChatItem
from ..models.table import CustomerEntry
from ..realtime.privacy import realtime_forget_customer, realtime_forget_session
from ..search import search_engine
from ..selectors.privacy import customer_session_ids, item_kinds, session_items
from .audit import audited
from .sessions import session_close

# DAX's item and query caches keep entries for their TTL (5 minutes unless the cluster's
# parameter group says otherwise) and a delete through DynamoDB does not evict them:
# https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/DAX.concepts.html#DAX.concepts.item-cache
DAX_DEFAULT_TTL_SECONDS = 300
DELETE_ROUNDS = 3

log = logging.getLogger("sessions_app.privacy")


@dataclass(frozen=True, kw_only=True)
class _Receipt:
    items_deleted: dict[str, int]
    redis_keys_deleted: int | None
    redis_error: str | None
    search_docs_deleted: int | None  # documents taken out of the search index (None: it failed)
    search_error: str | None
    verified_empty: bool
    completed_at: datetime
    dax_ttl_seconds: int = DAX_DEFAULT_TTL_SECONDS
    dax_clear_by: datetime = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "dax_clear_by", self.completed_at + timedelta(seconds=self.dax_ttl_seconds))

    @property
    def complete(self) -> bool:
        return self.verified_empty and self.redis_error is None and self.search_error is None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["completed_at"] = self.completed_at.isoformat()
        data["dax_clear_by"] = self.dax_clear_by.isoformat()
        data["complete"] = self.complete
        return data


@dataclass(frozen=True, kw_only=True)
class DeleteReceipt(_Receipt):
    session_id: str
    customer_id: str | None


@dataclass(frozen=True, kw_only=True)
class CustomerDeleteReceipt(_Receipt):
    customer_id: str
    session_ids: list[str]  # the sessions erased, in the order they were found
    remaining_session_ids: list[str]  # sessions still holding items after the last round
    directory_entry_deleted: bool = False  # the customer directory's entry (CustomerEntry) was there and is gone


@dataclass
class _Erasure:
    customer_id: str | None = None
    deleted: Counter[str] = field(default_factory=Counter)
    verified_empty: bool = False
    redis_deleted: int = 0
    redis_error: str | None = None
    search_deleted: int = 0
    search_error: str | None = None


def _erase_session(*, session_id: str) -> _Erasure:
    """Close, delete every item, prove the partition empty, delete the Redis keys."""
    erasure = _Erasure()
    # The close itself clears presence and the cached context: forget the Redis keys first so
    # the receipt counts them too. Only the last pass decides whether Redis is clean.
    try:
        erasure.redis_deleted += realtime_forget_session(session_id=session_id)
    except RedisUnavailable:
        pass
    try:
        meta, _ = session_close(session_id=session_id, final_summary=False)
        erasure.customer_id = meta.customer_id
    except SessionNotFound:
        pass  # META already gone (a retried delete): still clear the rest
    for _ in range(DELETE_ROUNDS):
        items = session_items(session_id=session_id)
        if not items:
            break
        with ChatItem.batch_write() as batch:
            for item in items:
                batch.delete(item)
        erasure.deleted.update(item_kinds(items))
    erasure.verified_empty = not session_items(session_id=session_id)
    # The search index in the same action (its tombstone keeps the change feed's late copies
    # out). Any failure of it is the receipt's to tell, not a reason to stop the erasure.
    try:
        erasure.search_deleted = search_engine().session_delete(session_id)
    except Exception as exc:  # noqa: BLE001 — reported on the receipt, which is then incomplete
        log.exception("privacy delete of %s: the search index could not be updated", session_id)
        erasure.search_error = f"search index: {type(exc).__name__}: {exc}"
    try:
        erasure.redis_deleted += realtime_forget_session(session_id=session_id)
    except RedisUnavailable as exc:
        erasure.redis_error = exc.message
    return erasure


def _erase_directory_entry(*, customer_id: str) -> bool:
    """Delete the customer's directory entry (``CustomerEntry``), if there is one; whether there
    was. After the sessions: a session of this customer started later writes a new one."""
    try:
        entry = CustomerEntry.get(keys.customer_item_pk(customer_id), keys.CUSTOMER_ITEM_SK, consistent_read=True)
    except CustomerEntry.DoesNotExist:
        return False
    with ChatItem.batch_write() as batch:
        batch.delete(entry)
    return True


def privacy_delete_execute(*, actor: AbstractBaseUser, session_id: str, confirm: str) -> DeleteReceipt:
    """Delete every DynamoDB item and Redis key of the session, then prove the partition is
    empty. ``confirm`` must repeat the session id (the console's type-to-confirm)."""
    validate_id(session_id, field="session_id")
    with audited(actor=actor, action="privacy_delete", session_id=session_id) as audit:
        if confirm != session_id:
            raise InvalidInput("type the session id to confirm the delete", field="confirm")
        erasure = _erase_session(session_id=session_id)
        audit.customer_id = erasure.customer_id or ""
        receipt = DeleteReceipt(
            session_id=session_id, customer_id=erasure.customer_id, items_deleted=dict(erasure.deleted),
            redis_keys_deleted=None if erasure.redis_error else erasure.redis_deleted,
            redis_error=erasure.redis_error, verified_empty=erasure.verified_empty, completed_at=utcnow(),
            search_docs_deleted=None if erasure.search_error else erasure.search_deleted,
            search_error=erasure.search_error,
        )
        audit.outcome = "ok" if receipt.complete else "incomplete"
        audit.detail["receipt"] = receipt.as_dict()
    return receipt


def privacy_customer_delete(*, actor: AbstractBaseUser, customer_id: str, confirm: str) -> CustomerDeleteReceipt:
    """Delete everything of the customer: every session found through ``by_customer`` (each
    erased as one session is), then the customer's own Redis keys. ``confirm`` must repeat the
    customer id.

    The index is asked again after each round, so a session started meanwhile is erased too;
    one still there after ``DELETE_ROUNDS`` rounds makes the receipt incomplete. (The index is
    eventually consistent: it may still list a session just erased, whose partition the
    consistent re-read shows empty.)
    """
    validate_id(customer_id, field="customer_id")
    with audited(actor=actor, action="privacy_delete_customer", customer_id=customer_id) as audit:
        if confirm != customer_id:
            raise InvalidInput("type the customer id to confirm the delete", field="confirm")
        erased: list[str] = []
        unverified: list[str] = []  # erased, yet the consistent re-read still found items
        deleted: Counter[str] = Counter()
        redis_deleted, redis_errors = 0, []
        search_deleted, search_errors = 0, []
        for _ in range(DELETE_ROUNDS):
            new = [sid for sid in customer_session_ids(customer_id=customer_id) if sid not in erased]
            if not new:
                break
            for session_id in new:
                erasure = _erase_session(session_id=session_id)
                erased.append(session_id)
                deleted.update(erasure.deleted)
                if not erasure.verified_empty:
                    unverified.append(session_id)
                redis_deleted += erasure.redis_deleted
                if erasure.redis_error:
                    redis_errors.append(erasure.redis_error)
                search_deleted += erasure.search_deleted
                if erasure.search_error:
                    search_errors.append(erasure.search_error)
        # The customer directory's entry (the console's customer lookup) goes with the sessions.
        directory_deleted = _erase_directory_entry(customer_id=customer_id)
        listed = [sid for sid in customer_session_ids(customer_id=customer_id) if sid not in unverified]
        remaining = unverified + [sid for sid in listed if session_items(session_id=sid)]
        try:
            redis_deleted += realtime_forget_customer(customer_id=customer_id)
        except RedisUnavailable as exc:
            redis_errors.append(exc.message)
        receipt = CustomerDeleteReceipt(
            customer_id=customer_id, session_ids=erased, remaining_session_ids=remaining,
            directory_entry_deleted=directory_deleted,
            items_deleted=dict(deleted), redis_keys_deleted=None if redis_errors else redis_deleted,
            redis_error=redis_errors[0] if redis_errors else None, verified_empty=not remaining,
            completed_at=utcnow(), search_docs_deleted=None if search_errors else search_deleted,
            search_error=search_errors[0] if search_errors else None,
        )
        audit.outcome = "ok" if receipt.complete else "incomplete"
        audit.detail["receipt"] = receipt.as_dict()
    return receipt
