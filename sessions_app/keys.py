"""Pure builders for the single table's keys and for pagination cursors. No I/O.

Every key string in the project is built here. Zero-padding keeps lexicographic order equal to
numeric order, and timestamps are fixed-width UTC ISO-8601 strings, so DynamoDB's byte-wise sort
is chronological. See README.md "Data model" for the table layout.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

from django.core import signing

from .exceptions import InvalidCursor
from .ids import ID_PATTERN

SESSION_PREFIX = "SESSION#"
META_SK = "META"
TURN_PREFIX = "TURN#"
SUMMARY_PREFIX = "SUMMARY#"
MSGID_PREFIX = "MSGID#"
DUE_PREFIX = "DUE#"
CUSTOMER_PREFIX = "CUST#"
DAY_PREFIX = "DAY#"
STATUS_PREFIX = "STATUS#"
CHANNEL_PREFIX = "CHAN#"
SUMMARY_STATE_PREFIX = "SUMSTATE#"

SEQ_WIDTH = 10  # up to 9,999,999,999 turns in one session
MAX_SEQ = 10**SEQ_WIDTH - 1

CURSOR_SALT = "mangaassist.cursor.v1"


def session_pk(session_id: str) -> str:
    return f"{SESSION_PREFIX}{session_id}"


def session_id_from_pk(pk: str) -> str:
    if not pk.startswith(SESSION_PREFIX):
        raise ValueError(f"not a session key: {pk!r}")
    return pk[len(SESSION_PREFIX):]


def seq_str(seq: int) -> str:
    if not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"sequence number out of range: {seq}")
    return f"{seq:0{SEQ_WIDTH}d}"


def turn_sk(seq: int) -> str:
    return f"{TURN_PREFIX}{seq_str(seq)}"


def seq_from_turn_sk(sk: str) -> int:
    if not sk.startswith(TURN_PREFIX):
        raise ValueError(f"not a turn key: {sk!r}")
    return int(sk[len(TURN_PREFIX):])


def summary_sk(through_seq: int) -> str:
    """Summaries are keyed by the last turn they cover, so a re-run over the same turns
    targets the same key (idempotent) and the newest summary sorts last."""
    return f"{SUMMARY_PREFIX}{seq_str(through_seq)}"


def client_msg_sk(client_msg_id: str) -> str:
    return f"{MSGID_PREFIX}{client_msg_id}"


def seq_from_summary_sk(sk: str) -> int:
    if not sk.startswith(SUMMARY_PREFIX):
        raise ValueError(f"not a summary key: {sk!r}")
    return int(sk[len(SUMMARY_PREFIX):])


def ts_str(moment: datetime) -> str:
    """Fixed-width UTC timestamp (microseconds), sortable as a string."""
    if moment.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)


def shard_of(session_id: str, shards: int) -> int:
    # crc32, not hash(): the shard must be the same in every process and every release.
    return zlib.crc32(session_id.encode()) % shards


def customer_pk(customer_id: str) -> str:
    return f"{CUSTOMER_PREFIX}{customer_id}"


def day_pk(day: date, shard: int) -> str:
    return f"{DAY_PREFIX}{day.isoformat()}#{shard}"


def channel_day_pk(channel: str, day: date, shard: int) -> str:
    """Partition of the by_channel index: one channel's sessions of one day, write-sharded."""
    return f"{CHANNEL_PREFIX}{channel}#{day.isoformat()}#{shard}"


def status_pk(status: str, shard: int) -> str:
    return f"{STATUS_PREFIX}{status}#{shard}"


WAITING_PREFIX = "WAIT#"
OWNER_PREFIX = "OWNER#"


def waiting_pk(shard: int) -> str:
    """Partition of the sparse handoff_queue index: hand-offs nobody owns, write-sharded."""
    return f"{WAITING_PREFIX}{shard}"


def owner_pk(username: str) -> str:
    """Partition of the sparse by_owner index: the sessions one staff member owns."""
    if not username:
        raise ValueError("owner must be a non-empty username")
    return f"{OWNER_PREFIX}{username}"


def due_pk(shard: int) -> str:
    """Partition of the sparse summary_due index (sharded like the other indexes)."""
    return f"{DUE_PREFIX}{shard}"


def summary_due_pk(session_id: str, shards: int) -> str:
    """The summary_due partition a session's META goes to (``shards``: SUMMARY_DUE_SHARDS)."""
    return due_pk(shard_of(session_id, shards))


def summary_state_pk(state: str, shard: int) -> str:
    """Partition of the by_summary_state index: the sessions in one summary state, write-sharded."""
    return f"{SUMMARY_STATE_PREFIX}{state}#{shard}"


def session_summary_state_pk(session_id: str, state: str, shards: int) -> str:
    """The by_summary_state partition a session's META goes to while it is in ``state``
    (``shards``: SUMMARY_STATE_SHARDS; the shard is the session's, so only the state changes)."""
    return summary_state_pk(state, shard_of(session_id, shards))


def started_sk(started_at: datetime, session_id: str) -> str:
    """Sort key of the session indexes: start time, then id as a tie-breaker."""
    return f"{ts_str(started_at)}#{session_id}"


# fullmatch, not the pattern's "$": that also matches before a final newline.
_STARTED_SK_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z#" + ID_PATTERN.removeprefix("^").removesuffix("$"))


def started_sk_parse(sort_key: object) -> tuple[datetime, str]:
    """The start time and session id of a :func:`started_sk`; ``ValueError`` for anything that
    is not exactly one (a fixed-width UTC timestamp, ``#``, a valid id)."""
    if not isinstance(sort_key, str) or not _STARTED_SK_RE.fullmatch(sort_key):
        raise ValueError(f"not a session sort key: {sort_key!r}")
    stamp, session_id = sort_key.split("#", 1)
    return parse_ts(stamp), session_id


# --- lookups by id prefix (selectors.lookup) ----------------------------------------------------
# A prefix lookup is one begins_with key condition on one partition, so the partition is derived
# from as many leading (lower-cased) characters as the shortest prefix a lookup accepts: every
# id that starts with an accepted prefix is in that prefix's partition. Changing a minimum means
# rewriting the keys (session_keys_backfill), so each is a constant here, next to the keys.
SESSION_LOOKUP_PREFIX = "SIDP#"
CUSTOMER_LOOKUP_PREFIX = "CIDP#"
CUSTOMER_ITEM_PREFIX = "CUSTOMER#"
CUSTOMER_ITEM_SK = "CUSTOMER"
SESSION_PREFIX_MIN = 8  # characters of a session id a lookup needs (unless it is an exact id)
CUSTOMER_PREFIX_MIN = 3  # characters of a customer id a lookup needs (unless it is an exact id)


def lookup_fold(value: str) -> str:
    """The case-insensitive form of an id (ids are ASCII: ``sessions_app.ids``)."""
    return value.lower()


def session_lookup_pk(session_id: str) -> str:
    """Partition of the by_session_prefix index: the first SESSION_PREFIX_MIN characters of the
    lower-cased id (the whole id when it is shorter). Also the partition a lookup of a prefix
    (at least that long) reads."""
    return f"{SESSION_LOOKUP_PREFIX}{lookup_fold(session_id)[:SESSION_PREFIX_MIN]}"


def session_lookup_sk(session_id: str) -> str:
    """Sort key of the by_session_prefix index: the lower-cased id (begins_with on it)."""
    return lookup_fold(session_id)


def customer_item_pk(customer_id: str) -> str:
    """The customer directory item (one per customer id, exact case: ids are case-sensitive)."""
    return f"{CUSTOMER_ITEM_PREFIX}{customer_id}"


def customer_lookup_pk(customer_id: str) -> str:
    """Partition of the by_customer_prefix index: the first CUSTOMER_PREFIX_MIN characters of the
    lower-cased customer id (the whole id when it is shorter)."""
    return f"{CUSTOMER_LOOKUP_PREFIX}{lookup_fold(customer_id)[:CUSTOMER_PREFIX_MIN]}"


def customer_lookup_sk(customer_id: str) -> str:
    """Sort key of the by_customer_prefix index: the lower-cased id."""
    return lookup_fold(customer_id)


# --- cursors -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cursor:
    """An opaque pagination position: the kind of listing it belongs to and its state
    (DynamoDB LastEvaluatedKeys and merge positions). Signed, so clients cannot forge keys."""

    kind: str
    state: dict[str, Any]


def cursor_encode(cursor: Cursor) -> str:
    payload = {"k": cursor.kind, "s": cursor.state}
    return signing.dumps(payload, salt=CURSOR_SALT, compress=True, serializer=_CompactJSONSerializer)


# A cursor's state, checked: a valid signature proves that the state was signed with our key,
# not that we made it — a leaked or shared key can sign anything. Each listing declares the shape
# of its state with these checks, and cursor_decode refuses any other state as malformed.
Check = Callable[[Any], bool]


def cursor_int(low: int, high: int) -> Check:
    """An integer from ``low`` to ``high`` (JSON ``true`` is not 1 here)."""
    return lambda value: type(value) is int and low <= value <= high


def cursor_text(max_length: int = 256) -> Check:
    return lambda value: isinstance(value, str) and len(value) <= max_length


def cursor_list(item: Check, *, max_length: int) -> Check:
    return lambda value: isinstance(value, list) and len(value) <= max_length and all(item(v) for v in value)


def cursor_optional(check: Check) -> Check:
    """``null`` or what ``check`` accepts."""
    return lambda value: value is None or check(value)


def cursor_started_sk(value: object) -> bool:
    try:
        started_sk_parse(value)
    except ValueError:
        return False
    return True


def cursor_decode(token: str, *, kind: str, shape: Mapping[str, Check] | None = None) -> Cursor:
    """The cursor ``token`` names, if we signed it for ``kind``; else ``InvalidCursor``.

    ``shape`` names every key the state must hold — no more, no fewer — and the check its value
    must pass; every listing passes one, so no forged state gets further than this.
    """
    try:
        payload = signing.loads(token, salt=CURSOR_SALT, serializer=_CompactJSONSerializer)
    except signing.BadSignature:
        raise InvalidCursor("cursor is invalid or was tampered with", field="cursor") from None
    except (ValueError, TypeError, UnicodeDecodeError, zlib.error):
        raise InvalidCursor("cursor is malformed", field="cursor") from None
    if not isinstance(payload, dict) or payload.get("k") != kind or not isinstance(payload.get("s"), dict):
        raise InvalidCursor(f"cursor does not belong to this listing ({kind})", field="cursor")
    state = payload["s"]
    if shape is not None and (set(state) != set(shape) or not all(check(state[name]) for name, check in shape.items())):
        raise InvalidCursor("cursor is malformed", field="cursor")
    return Cursor(kind=kind, state=state)


class _CompactJSONSerializer:
    def dumps(self, obj):
        return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode("latin-1")

    def loads(self, data):
        return json.loads(data.decode("latin-1"))
