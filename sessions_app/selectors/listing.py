"""Session listings for the staff console: newest first, cursor-paginated, never a Scan.

Which index serves a listing depends on its filters:

* a customer → ``by_customer`` (one partition per customer);
* a summary state → ``by_summary_state``, one partition per state shard (the pending partitions
  too for stale and none: an expired request shows as one of those, see ``summaries.summary_state``);
* an indexed status (active, handed off) → ``by_status``, one partition per status shard;
* a channel → ``by_channel``, one partition per (channel, day, shard), days walked newest first;
* otherwise → ``by_day``, one partition per (day, shard), days walked newest first.

Whatever the index does not key is a FilterExpression (closed status, or a channel within a
customer, summary-state or status listing). The summary state itself is derived per session with
the clock (``summaries.summary_state``), so the caller (``browse.session_find``) checks each row.

Sharded partitions are merged newest first with a lazy k-way merge: each shard is read in small
chunks and only as far as the merge needs. The cursor records, per shard, the sort key of the
last session handed out (or "done"), so the next page resumes each shard exactly where the page
left it: no offsets, no duplicates, no gaps. Every page is bounded in DynamoDB requests; a page
that runs out of budget (very selective filters) comes back short, with a cursor, and says so.
"""

from __future__ import annotations

import hashlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.conf import settings

from .. import dynamo, keys
from ..exceptions import InvalidCursor, InvalidInput
from ..models import CHANNELS, SessionMeta, SessionStatus
from ..clock import utcnow
from ..ids import validate_id
from .sessions import session_get_many
from .summaries import PENDING_EXPIRES_TO, SUMMARY_STATES, SummaryStates

LIST_CURSOR = "sessions"
MAX_DAYS = 400
DEFAULT_DAYS = 30
DONE = "done"
MAX_CHUNK = 200
# A filtered partition starts with this many times the unfiltered chunk: DynamoDB's Limit counts
# items before the filter, and a round of shard reads costs far more than a few extra index items.
FILTERED_CHUNK_FACTOR = 3
MAX_SHARDS = 256  # more shards than any index has: a bound for a cursor's list of positions
# The state of a listing cursor: f — the filters' fingerprint; g — the group (day) being read;
# p — per partition of that group, where to resume: null (from the top), a sort key, or "done";
# or p null, from the top of the group. What the filters decide (which group, how many
# partitions, which days) is checked by _cursor_resume.
CURSOR_SHAPE = {
    "f": keys.cursor_text(64),
    "g": keys.cursor_int(0, MAX_DAYS),
    "p": keys.cursor_optional(keys.cursor_list(
        keys.cursor_optional(lambda v: v == DONE or keys.cursor_started_sk(v)), max_length=MAX_SHARDS)),
}


@dataclass(frozen=True)
class _StreamSpec:
    index: Any  # a PynamoDB index class attribute of SessionMeta
    hash_key: str
    range_condition: Any = None
    filter_condition: Any = None


class _Stream:
    """One index partition read newest first, in chunks, resumable from a sort key."""

    def __init__(self, spec: _StreamSpec, position: str | None, chunk: int):
        self.spec = spec
        self.position = position  # cursor form: None (from the top), a sort key, or DONE
        self.chunk = chunk if spec.filter_condition is None else min(chunk * FILTERED_CHUNK_FACTOR, MAX_CHUNK)
        self.buffer: list[dict] = []
        self.fetches = 0
        self.exhausted = position == DONE
        key_schema = {k["KeyType"]: k["AttributeName"] for k in spec.index._get_schema()["key_schema"]}
        self._hash_attr, self._range_attr = key_schema["HASH"], key_schema["RANGE"]
        self._start_key = self._key_for(position) if position not in (None, DONE) else None

    def _key_for(self, sort_key: str) -> dict:
        """The ExclusiveStartKey that resumes the index right after ``sort_key``."""
        session_id = sort_key.split("#", 1)[1]
        return {
            "PK": {"S": keys.session_pk(session_id)},
            "SK": {"S": keys.META_SK},
            self._hash_attr: {"S": self.spec.hash_key},
            self._range_attr: {"S": sort_key},
        }

    def fetch(self) -> None:
        # Straight to DynamoDB: DAX's query cache is not invalidated by writes, so through it a
        # session started, closed or handed off within its TTL would be missing from (or linger
        # in) the listings staff watch. The META rows themselves still come through DAX.
        with dynamo.dax_bypassed():
            data = SessionMeta._get_connection().query(
                self.spec.hash_key,
                range_key_condition=self.spec.range_condition,
                filter_condition=self.spec.filter_condition,
                index_name=self.spec.index.Meta.index_name,
                exclusive_start_key=self._start_key,
                scan_index_forward=False,
                limit=self.chunk,
            )
        self.fetches += 1
        items = data.get("Items", [])
        self.buffer.extend(items)
        self._start_key = data.get("LastEvaluatedKey")
        if self._start_key is None:
            self.exhausted = True
        elif len(items) < self.chunk:
            # Limit counts items read before the filter: a selective filter returns fewer, so
            # read more per request rather than pay a round trip per match.
            self.chunk = min(self.chunk * 2, MAX_CHUNK)

    def sort_key(self, item: dict) -> str:
        return item[self._range_attr]["S"]

    def take(self) -> dict:
        item = self.buffer.pop(0)
        self.position = self.sort_key(item)
        return item

    def cursor_position(self) -> str | None:
        """Where the next page resumes this partition. With nothing buffered, that is how far
        DynamoDB has read (a filter may have skipped items nobody was handed)."""
        if self.buffer:
            return self.position
        if self.exhausted:
            return DONE
        return self._start_key[self._range_attr]["S"] if self._start_key else self.position


@dataclass(frozen=True)
class SessionPage:
    sessions: list[SessionMeta]
    cursor: str | None  # None: the listing is complete
    short_reason: str | None = None  # set when the page is short for a reason other than the end
    filters: dict = field(default_factory=dict)


def _window(day_from: date, day_to: date) -> tuple[str, str]:
    """The lowest and highest index sort key of sessions started in the days."""
    return f"{day_from.isoformat()}T00:00:00.000000Z", f"{day_to.isoformat()}T23:59:59.999999Z#~"  # '~' sorts after every id character


def _plan(*, day_from: date, day_to: date, customer_id: str | None, status: str | None, channel: str | None,
          summary_state: str | None = None) -> list[list[_StreamSpec]]:
    low, high = _window(day_from, day_to)
    if summary_state and not customer_id:
        filters = _and(
            SessionMeta.status == status if status else None,
            SessionMeta.channel == channel if channel else None,
        )
        states = [summary_state] + ([SummaryStates.PENDING] if summary_state in PENDING_EXPIRES_TO else [])
        return [[
            _StreamSpec(SessionMeta.by_summary_state, keys.summary_state_pk(state, shard),
                        SessionMeta.gsi8sk.between(low, high), filters)
            for state in states for shard in range(settings.SUMMARY_STATE_SHARDS)
        ]]
    if customer_id:
        filters = _and(
            SessionMeta.status == status if status else None,
            SessionMeta.channel == channel if channel else None,
        )
        return [[_StreamSpec(SessionMeta.by_customer, keys.customer_pk(customer_id), SessionMeta.gsi1sk.between(low, high), filters)]]
    if status in SessionStatus.INDEXED:
        filters = _and(SessionMeta.channel == channel if channel else None)
        return [[
            _StreamSpec(SessionMeta.by_status, keys.status_pk(status, shard), SessionMeta.gsi3sk.between(low, high), filters)
            for shard in range(settings.DYNAMODB_STATUS_SHARDS)
        ]]
    filters = _and(SessionMeta.status == status if status else None)
    groups = []
    day = day_to
    while day >= day_from:
        if channel:
            groups.append([_StreamSpec(SessionMeta.by_channel, keys.channel_day_pk(channel, day, shard), None, filters)
                           for shard in range(settings.DYNAMODB_CHANNEL_SHARDS)])
        else:
            groups.append([_StreamSpec(SessionMeta.by_day, keys.day_pk(day, shard), None, filters)
                           for shard in range(settings.DYNAMODB_DAY_SHARDS)])
        day -= timedelta(days=1)
    return groups


_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool() -> ThreadPoolExecutor:
    """A per-process pool (threads do not survive fork: gunicorn and Celery fork workers)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid():
        _POOL = (os.getpid(), ThreadPoolExecutor(max_workers=16, thread_name_prefix="session-list"))
    return _POOL[1]


def _cursor_resume(cursor: str, *, fingerprint: str, groups: list[list[_StreamSpec]], window: tuple[str, str]) -> tuple[int, list | None]:
    """The group and partition positions a listing cursor resumes at, or ``InvalidCursor``:
    its state has the declared shape (keys.cursor_decode), was made for these filters, names one
    of their groups and one position per partition of it, each within the listing's days (the
    start key of a Query outside its key condition is refused by DynamoDB)."""
    state = keys.cursor_decode(cursor, kind=LIST_CURSOR, shape=CURSOR_SHAPE).state
    if state["f"] != fingerprint:
        raise InvalidCursor("cursor was made for other filters", field="cursor")
    group_index, positions = state["g"], state["p"]
    if group_index >= len(groups):
        raise InvalidCursor("cursor is out of range", field="cursor")
    if positions is not None:
        low, high = window
        if len(positions) != len(groups[group_index]) or not all(
                p in (None, DONE) or low <= p <= high for p in positions):
            raise InvalidCursor("cursor is out of range", field="cursor")
    return group_index, positions


def _and(*conditions):
    result = None
    for condition in conditions:
        if condition is not None:
            result = condition if result is None else result & condition
    return result


def session_list(
    *,
    day_from: date | None = None,
    day_to: date | None = None,
    customer_id: str | None = None,
    status: str | None = None,
    channel: str | None = None,
    summary_state: str | None = None,
    cursor: str | None = None,
    limit: int = 25,
    max_requests: int = 40,
) -> SessionPage:
    """Sessions newest first (by start time), filtered, one page at a time.

    ``day_from``/``day_to`` are UTC dates, inclusive (default: the last 30 days). Each returned
    META is read fresh by BatchGetItem (the indexes project only attributes that never change).
    """
    if not 1 <= limit <= 200:
        raise InvalidInput("limit must be between 1 and 200", field="limit")
    if customer_id is not None:
        validate_id(customer_id, field="customer_id")
    if status is not None and status not in SessionStatus.ALL:
        raise InvalidInput(f"status must be one of {', '.join(SessionStatus.ALL)}", field="status")
    if channel is not None and channel not in CHANNELS:
        raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
    if summary_state is not None and summary_state not in SUMMARY_STATES:
        raise InvalidInput(f"summary_state must be one of {', '.join(SUMMARY_STATES)}", field="summary_state")
    day_to = day_to or utcnow().date()
    day_from = day_from or day_to - timedelta(days=DEFAULT_DAYS - 1)
    if day_from > day_to:
        raise InvalidInput("day_from is after day_to", field="day_from")
    if (day_to - day_from).days >= MAX_DAYS:
        raise InvalidInput(f"a day range spans at most {MAX_DAYS} days", field="day_from")

    filters = {"day_from": day_from.isoformat(), "day_to": day_to.isoformat(), "customer_id": customer_id,
               "status": status, "channel": channel, "summary_state": summary_state}
    fingerprint = hashlib.sha256(repr(sorted(filters.items())).encode()).hexdigest()[:16]
    groups = _plan(day_from=day_from, day_to=day_to, customer_id=customer_id, status=status, channel=channel,
                   summary_state=summary_state)

    group_index, positions = 0, None
    if cursor:
        group_index, positions = _cursor_resume(cursor, fingerprint=fingerprint, groups=groups,
                                                window=_window(day_from, day_to))

    found: list[dict] = []
    requests = 0
    short_reason = None
    while len(found) < limit and group_index < len(groups):
        specs = groups[group_index]
        if positions is None:
            positions = [None] * len(specs)
        chunk = limit if len(specs) == 1 else max(2, math.ceil(limit / len(specs)) + 1)
        streams = [_Stream(spec, pos, chunk) for spec, pos in zip(specs, positions)]
        while len(found) < limit:
            # Every stream that may still hold items must show its head before the newest can
            # be chosen; otherwise an unread, newer item could be skipped.
            # One read per partition is always allowed, so every page makes progress. The shards
            # of a group are independent partitions: read them concurrently.
            starving = [s for s in streams if not s.buffer and not s.exhausted and (requests < max_requests or not s.fetches)]
            while starving:
                requests += len(starving)
                list(_pool().map(_Stream.fetch, starving))
                starving = [s for s in starving if not s.buffer and not s.exhausted and requests < max_requests]
            if any(not s.buffer and not s.exhausted for s in streams):
                short_reason = "read budget reached"
                break
            ready = [s for s in streams if s.buffer]
            if not ready:
                break
            newest = max(ready, key=lambda s: s.sort_key(s.buffer[0]))
            found.append(newest.take())
        positions = [s.cursor_position() for s in streams]
        if short_reason:
            break
        if all(p == DONE for p in positions):
            group_index, positions = group_index + 1, None

    next_cursor = None
    if group_index < len(groups):
        next_cursor = keys.cursor_encode(keys.Cursor(kind=LIST_CURSOR, state={"f": fingerprint, "g": group_index, "p": positions}))
    # A session deleted between the index read and the batch get is simply left out.
    return SessionPage(sessions=session_get_many(session_ids=[item["session_id"]["S"] for item in found]), cursor=next_cursor, short_reason=short_reason, filters=filters)
