"""The dry runs of a privacy delete (what would be removed), and the reads the delete itself
uses to find its items and prove them gone.

Per session: every item of its partition (one Query, strongly consistent) and its Redis keys.
Per customer (a data-subject request is per person): every session of the customer, found
through the ``by_customer`` index (a Query, never a Scan), each as above, plus the keys named
by the customer (the rate window).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from .. import dynamo, keys
from ..exceptions import RedisUnavailable, SessionNotFound
from ..ids import validate_id
from ..models import ChatItem, SessionMeta
from ..realtime.privacy import realtime_keys_for_customer, realtime_keys_for_session


def session_items(*, session_id: str) -> list[ChatItem]:
    """Every item of the session: one Query on its partition (strongly consistent, keys only)."""
    return list(ChatItem.query(keys.session_pk(session_id), consistent_read=True, attributes_to_get=["PK", "SK", "type"]))


def item_kinds(items: list[ChatItem]) -> Counter[str]:
    """Items per type ("SessionMeta", "Turn", "Summary", "ClientMessageMarker")."""
    return Counter(type(item).__name__ for item in items)


def customer_session_ids(*, customer_id: str) -> list[str]:
    """Every session of the customer, whatever its age: the customer's whole ``by_customer``
    partition, paged. Straight to DynamoDB: DAX's query cache would answer with an old list."""
    with dynamo.dax_bypassed():
        return [meta.session_id for meta in SessionMeta.by_customer.query(keys.customer_pk(customer_id))]


@dataclass(frozen=True)
class DeletePlan:
    session_id: str
    customer_id: str | None  # None when META is already gone
    items: dict[str, int]  # item type -> count
    redis_keys: list[str] | None  # None: Redis unavailable

    @property
    def item_total(self) -> int:
        return sum(self.items.values())


def privacy_delete_plan(*, session_id: str) -> DeletePlan:
    """The dry run for one session: what a privacy delete would remove, read-only."""
    validate_id(session_id, field="session_id")
    items = session_items(session_id=session_id)
    if not items:
        raise SessionNotFound(f"session {session_id} has no stored items", field="session_id")
    customer_id = None
    try:
        customer_id = SessionMeta.get(keys.session_pk(session_id), keys.META_SK, consistent_read=True).customer_id
    except SessionMeta.DoesNotExist:
        pass
    return _plan_of(session_id=session_id, customer_id=customer_id, items=items)


def _plan_of(*, session_id: str, customer_id: str | None, items: list[ChatItem]) -> DeletePlan:
    try:
        redis_keys = realtime_keys_for_session(session_id=session_id)
    except RedisUnavailable:
        redis_keys = None
    return DeletePlan(session_id=session_id, customer_id=customer_id, items=dict(item_kinds(items)),
                      redis_keys=redis_keys)


@dataclass(frozen=True)
class CustomerDeletePlan:
    customer_id: str
    sessions: list[DeletePlan]  # newest first; a session whose items are already gone is left out
    redis_keys: list[str] | None  # the customer's own keys and every session's; None: Redis unavailable

    @property
    def items(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for plan in self.sessions:
            total.update(plan.items)
        return dict(total)

    @property
    def item_total(self) -> int:
        return sum(self.items.values())


def privacy_customer_plan(*, customer_id: str) -> CustomerDeletePlan:
    """The dry run for a customer: every session, its items per type, and every Redis key."""
    validate_id(customer_id, field="customer_id")
    plans = []
    for session_id in reversed(customer_session_ids(customer_id=customer_id)):
        items = session_items(session_id=session_id)
        if items:  # the index can still list a session deleted a moment ago
            plans.append(_plan_of(session_id=session_id, customer_id=customer_id, items=items))
    try:
        redis_keys = realtime_keys_for_customer(customer_id=customer_id)
    except RedisUnavailable:
        redis_keys = None
    if redis_keys is not None and all(plan.redis_keys is not None for plan in plans):
        redis_keys += [key for plan in plans for key in plan.redis_keys]
    else:
        redis_keys = None
    return CustomerDeletePlan(customer_id=customer_id, sessions=plans, redis_keys=redis_keys)
