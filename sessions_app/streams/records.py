"""One DynamoDB Streams record, as the handlers see it.

Records reach us in two shapes: from GetRecords through botocore (``ApproximateCreationDateTime``
a datetime, binary values as bytes) and from a Lambda event source mapping (the same fields as
JSON: the time in epoch seconds, binary values base64-encoded). :func:`change_from_record` reads
both, so the consumer and the Lambda function run the same handlers on the same objects.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from .. import keys

# The identity DynamoDB puts on the REMOVE records of its own TTL deletions.
TTL_PRINCIPAL = "dynamodb.amazonaws.com"

ORIGIN_APP = "app"  # made by this app's write path, which already applied its cache effects
ORIGIN_TTL = "ttl"  # DynamoDB's TTL removed the item
ORIGIN_OUTSIDE = "outside"  # written by someone else: a hand edit, another service, a restore
ORIGIN_DELETE = "delete"  # an explicit delete (the app's privacy delete, or anyone's)
ORIGINS = (ORIGIN_APP, ORIGIN_TTL, ORIGIN_OUTSIDE, ORIGIN_DELETE)

# DynamoDB Streams rounds ApproximateCreationDateTime down (to the second on AWS, to the minute
# on DynamoDB Local). When the item names its own write time within that rounding, that is the
# better clock for lag.
_ROUNDING = timedelta(seconds=60)
_TIME_ATTRIBUTES = ("created_at", "last_message_at", "closed_at", "summary_requested_at", "started_at")
_PYNAMO_TIME = "%Y-%m-%dT%H:%M:%S.%f%z"

_deserializer = TypeDeserializer()


@dataclass(frozen=True, slots=True)
class Change:
    """A change to one item of the session table."""

    seq: str  # the record's SequenceNumber (a decimal string; ordered within a shard)
    event_id: str
    kind: str  # INSERT, MODIFY or REMOVE
    pk: str
    sk: str
    item_type: str | None  # session, turn, summary, msgid (the ``type`` attribute), None if unknown
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    changed_at: datetime
    origin: str  # one of ORIGINS
    shard_id: str | None = None  # None when the source does not say (a Lambda event)
    timed: bool = False  # changed_at is the item's own write time, not the stream's rounded one

    @property
    def session_id(self) -> str | None:
        try:
            return keys.session_id_from_pk(self.pk)
        except ValueError:
            return None

    @property
    def image(self) -> dict[str, Any]:
        """The newest image there is: the new one, or the old one of a removed item."""
        return self.new if self.new is not None else (self.old or {})

    @property
    def seq_number(self) -> int:
        return int(self.seq)


def _binary_from_json(value: Any) -> Any:
    """Lambda's JSON carries binary values base64-encoded; botocore hands over bytes."""
    if isinstance(value, dict):
        out = {}
        for tag, inner in value.items():
            if tag == "B" and isinstance(inner, str):
                out[tag] = base64.b64decode(inner)
            elif tag == "BS":
                out[tag] = [base64.b64decode(v) if isinstance(v, str) else v for v in inner]
            elif tag == "M":
                out[tag] = {k: _binary_from_json(v) for k, v in inner.items()}
            elif tag == "L":
                out[tag] = [_binary_from_json(v) for v in inner]
            else:
                out[tag] = inner
        return out
    return value


def _plain(value: Any) -> Any:
    """Deserialized values without boto3's wrappers: Decimal → int where whole, Binary → bytes."""
    from decimal import Decimal

    from boto3.dynamodb.types import Binary

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, frozenset)):
        return [_plain(v) for v in value]
    return value


def image_from_wire(image: dict | None) -> dict[str, Any] | None:
    if image is None:
        return None
    return {name: _plain(_deserializer.deserialize(_binary_from_json(value))) for name, value in image.items()}


def _approximate_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc) if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


def _item_time(image: dict[str, Any] | None, approximate: datetime) -> datetime | None:
    """The item's own write time, if it names one within the stream's rounding of ``approximate``."""
    best = None
    for name in _TIME_ATTRIBUTES:
        raw = (image or {}).get(name)
        if not isinstance(raw, str):
            continue
        try:
            moment = datetime.strptime(raw, _PYNAMO_TIME)
        except ValueError:
            continue
        if approximate <= moment < approximate + _ROUNDING and (best is None or moment > best):
            best = moment
    return best


def _origin(kind: str, old: dict | None, new: dict | None, identity: dict | None) -> str:
    if kind == "REMOVE":
        if identity and identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL:
            return ORIGIN_TTL
        return ORIGIN_DELETE
    if kind == "INSERT":
        return ORIGIN_APP if (new or {}).get("rev") is not None else ORIGIN_OUTSIDE
    # MODIFY: every app write changes ``rev`` (models.ChatItem.rev); one that left it alone was not ours.
    return ORIGIN_APP if (new or {}).get("rev") != (old or {}).get("rev") else ORIGIN_OUTSIDE


def change_from_record(record: dict, *, shard_id: str | None = None) -> Change:
    """A :class:`Change` from a GetRecords record or a Lambda event record."""
    body = record["dynamodb"]
    kind = record["eventName"]
    item_keys = image_from_wire(body["Keys"])
    old = image_from_wire(body.get("OldImage"))
    new = image_from_wire(body.get("NewImage"))
    approximate = _approximate_time(body["ApproximateCreationDateTime"])
    image = new if new is not None else old
    return Change(
        seq=str(body["SequenceNumber"]),
        event_id=record.get("eventID", ""),
        kind=kind,
        pk=str(item_keys.get("PK", "")),
        sk=str(item_keys.get("SK", "")),
        item_type=(image or {}).get("type"),
        old=old,
        new=new,
        changed_at=_item_time(new, approximate) or approximate,
        origin=_origin(kind, old, new, record.get("userIdentity")),
        shard_id=shard_id,
        timed=_item_time(new, approximate) is not None,
    )


def changes_from_records(records: list[dict], *, shard_id: str | None = None) -> list[Change]:
    """:func:`change_from_record` for one shard's records, in stream order. A record whose item
    names no write time (a client-message-id marker, a removal) happened no earlier than the
    record before it, so it gets that record's time when that is later than its own rounded one."""
    changes: list[Change] = []
    for record in records:
        change = change_from_record(record, shard_id=shard_id)
        if changes and not change.timed and changes[-1].changed_at > change.changed_at:
            change = replace(change, changed_at=changes[-1].changed_at)
        changes.append(change)
    return changes
