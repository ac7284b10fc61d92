"""Shard leases and checkpoints, in a DynamoDB table of their own (the Kinesis Client Library's
lease table, reduced to what this consumer needs).

One item per shard of a stream: PK ``stream`` (the stream ARN), SK ``shard`` (the shard id), so
the consumer and the console list a stream's leases with one Query. Attributes:

- ``owner``: the consumer holding the lease (absent: free); ``expires_ms``: until when (epoch ms,
  the holder's clock), pushed forward by every renewal and checkpoint;
- ``counter``: incremented by every take, renewal, checkpoint and release. Every write is
  conditional on the counter the writer last saw (and on being the owner), so two consumers can
  never both think they hold a shard, and a consumer that lost its lease finds out at its next
  write and stops reading that shard;
- ``checkpoint``: the sequence number of the last record whose effects are applied, or
  ``SHARD_END`` once a closed shard is read to its end; ``checkpoint_at`` when that was written;
- ``parent``: the parent shard id, so a child is read only after its parent is finished.

Why not the session table: the lease table must not have a stream (every checkpoint would be a
change to consume, forever), and its items are the consumer's, not the product's. Clocks: a lease
is taken over when its ``expires_ms`` is in the taker's past, so hosts' clocks must agree to well
within the lease duration (NTP keeps AWS hosts within milliseconds; the default is 10 s).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from botocore.exceptions import ClientError
from django.conf import settings

from .. import dynamo

SHARD_END = "SHARD_END"
# A finished shard's lease is kept this long after it ended (its records are gone after 24 h).
FINISHED_LEASE_TTL_SECONDS = 48 * 3600


def lease_table_name(session_table: str | None = None) -> str:
    """``STREAM_LEASE_TABLE``, or ``<session table>-leases``."""
    return settings.STREAM_LEASE_TABLE or f"{session_table or settings.DYNAMODB_TABLE}-leases"


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Lease:
    shard_id: str
    parent_id: str | None
    owner: str | None
    counter: int
    expires_ms: int
    checkpoint: str | None
    checkpoint_at: float | None  # epoch seconds

    @property
    def finished(self) -> bool:
        return self.checkpoint == SHARD_END

    def held(self, *, now_ms: int | None = None) -> bool:
        return self.owner is not None and self.expires_ms > (_now_ms() if now_ms is None else now_ms)


def _lease_of(item: dict) -> Lease:
    return Lease(
        shard_id=item["shard"]["S"],
        parent_id=item.get("parent", {}).get("S"),
        owner=item.get("owner", {}).get("S"),
        counter=int(item.get("counter", {}).get("N", "0")),
        expires_ms=int(item.get("expires_ms", {}).get("N", "0")),
        checkpoint=item.get("checkpoint", {}).get("S"),
        checkpoint_at=float(item["checkpoint_at"]["N"]) if "checkpoint_at" in item else None,
    )


class LeaseTable:
    """The leases of one stream."""

    def __init__(self, *, stream_arn: str, table_name: str | None = None) -> None:
        self.stream_arn = stream_arn
        self.table_name = table_name or lease_table_name()

    @property
    def _client(self):
        return dynamo.connection().client

    def _key(self, shard_id: str) -> dict:
        return {"stream": {"S": self.stream_arn}, "shard": {"S": shard_id}}

    def _conditional(self, **request) -> dict | None:
        """An UpdateItem whose failed condition means "someone else moved first": None."""
        try:
            return self._client.update_item(TableName=self.table_name, ReturnValues="ALL_NEW", **request)["Attributes"]
        except ClientError as exc:
            if dynamo.error_code(exc) == dynamo.CONDITION_FAILED:
                return None
            raise

    def list(self) -> list[Lease]:
        """Every lease of the stream (strongly consistent: decisions are made on it)."""
        leases, start = [], None
        while True:
            request = {"TableName": self.table_name, "KeyConditionExpression": "#s = :s",
                       "ExpressionAttributeNames": {"#s": "stream"},
                       "ExpressionAttributeValues": {":s": {"S": self.stream_arn}}, "ConsistentRead": True}
            if start:
                request["ExclusiveStartKey"] = start
            page = self._client.query(**request)
            leases += [_lease_of(item) for item in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                return leases

    def add(self, *, shard_id: str, parent_id: str | None) -> bool:
        """Create a free lease for a newly discovered shard (no-op if it exists)."""
        item = {**self._key(shard_id), "counter": {"N": "0"}, "expires_ms": {"N": "0"}}
        if parent_id:
            item["parent"] = {"S": parent_id}
        try:
            self._client.put_item(TableName=self.table_name, Item=item,
                                  ConditionExpression="attribute_not_exists(#k)", ExpressionAttributeNames={"#k": "shard"})
        except ClientError as exc:
            if dynamo.error_code(exc) == dynamo.CONDITION_FAILED:
                return False
            raise
        return True

    def take(self, lease: Lease, *, owner: str, seconds: float) -> Lease | None:
        """Take a free or expired lease (as seen in ``lease``). None: someone moved first."""
        now = _now_ms()
        item = self._conditional(
            Key=self._key(lease.shard_id),
            UpdateExpression="SET #o = :me, #c = #c + :one, expires_ms = :exp",
            ConditionExpression="#c = :seen AND (attribute_not_exists(#o) OR expires_ms < :now)",
            ExpressionAttributeNames={"#o": "owner", "#c": "counter"},
            ExpressionAttributeValues={":me": {"S": owner}, ":one": {"N": "1"}, ":seen": {"N": str(lease.counter)},
                                       ":now": {"N": str(now)}, ":exp": {"N": str(now + int(seconds * 1000))}},
        )
        return _lease_of(item) if item else None

    def renew(self, lease: Lease, *, owner: str, seconds: float, checkpoint: str | None = None) -> Lease | None:
        """Push the lease's expiry forward, and record ``checkpoint`` if given. None: the lease
        was lost (taken over after it expired) — stop reading the shard."""
        names = {"#o": "owner", "#c": "counter"}
        values = {":me": {"S": owner}, ":one": {"N": "1"}, ":seen": {"N": str(lease.counter)},
                  ":exp": {"N": str(_now_ms() + int(seconds * 1000))}}
        update = "SET #c = #c + :one, expires_ms = :exp"
        if checkpoint is not None:
            update += ", #cp = :cp, #cpa = :at"
            names.update({"#cp": "checkpoint", "#cpa": "checkpoint_at"})
            values[":cp"] = {"S": checkpoint}
            values[":at"] = {"N": repr(time.time())}
            if checkpoint == SHARD_END:
                update += ", #t = :ttl"
                names["#t"] = "ttl"
                values[":ttl"] = {"N": str(int(time.time()) + FINISHED_LEASE_TTL_SECONDS)}
        item = self._conditional(Key=self._key(lease.shard_id), UpdateExpression=update,
                                 ConditionExpression="#o = :me AND #c = :seen",
                                 ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        return _lease_of(item) if item else None

    def release(self, lease: Lease, *, owner: str) -> bool:
        """Give the lease up (graceful stop), so another consumer takes it at once."""
        item = self._conditional(
            Key=self._key(lease.shard_id), UpdateExpression="REMOVE #o SET #c = #c + :one, expires_ms = :zero",
            ConditionExpression="#o = :me AND #c = :seen",
            ExpressionAttributeNames={"#o": "owner", "#c": "counter"},
            ExpressionAttributeValues={":me": {"S": owner}, ":one": {"N": "1"}, ":zero": {"N": "0"},
                                       ":seen": {"N": str(lease.counter)}},
        )
        return item is not None


def lease_table_ensure(*, table_name: str | None = None, wait_seconds: float = 120) -> bool:
    """Create the lease table if it is missing (on-demand, no stream, TTL on ``ttl`` for the
    leases of finished shards). Returns whether it was created."""
    client = dynamo.connection().client
    name = table_name or lease_table_name()
    try:
        client.describe_table(TableName=name)
        return False
    except ClientError as exc:
        if dynamo.error_code(exc) != "ResourceNotFoundException":
            raise
    client.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "stream", "KeyType": "HASH"}, {"AttributeName": "shard", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "stream", "AttributeType": "S"},
                              {"AttributeName": "shard", "AttributeType": "S"}],
    )
    deadline = time.monotonic() + wait_seconds
    while client.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise TimeoutError(f"lease table {name} not ACTIVE after {wait_seconds:.0f}s")
        time.sleep(0.2)
    client.update_time_to_live(TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    return True


def lease_table_delete(*, table_name: str | None = None) -> None:
    """Drop the lease table (tests and local resets only)."""
    try:
        dynamo.connection().client.delete_table(TableName=table_name or lease_table_name())
    except ClientError as exc:
        if dynamo.error_code(exc) != "ResourceNotFoundException":
            raise
