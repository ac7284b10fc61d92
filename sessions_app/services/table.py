"""Create or update the DynamoDB table: key schema, indexes and TTL. Idempotent."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from botocore.exceptions import ClientError

from django.conf import settings

from .. import dynamo
from ..models import SessionMeta
from ..streams.leases import lease_table_delete, lease_table_ensure, lease_table_name

TTL_ATTRIBUTE = "ttl"
# The change feed needs both images: what a change was from, and to (docs/architecture.md §Change feed).
STREAM_VIEW_TYPE = "NEW_AND_OLD_IMAGES"
STREAM_SPECIFICATION = {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE}


@dataclass
class TableReport:
    table_name: str
    created: bool = False
    indexes_added: list[str] = field(default_factory=list)
    ttl_enabled: bool = False
    stream_enabled: bool = False
    stream_arn: str | None = None
    # A stream exists with the wrong view type: not changed here (that makes a new stream and
    # every consumer starts over on it), said instead.
    stream_problem: str | None = None
    lease_table_created: bool = False

    @property
    def changed(self) -> bool:
        return self.created or bool(self.indexes_added) or self.ttl_enabled or self.stream_enabled or self.lease_table_created


def _desired_schema() -> dict:
    schema = SessionMeta._get_schema()
    indexes = []
    for index in schema["global_secondary_indexes"]:
        indexes.append({
            "IndexName": index["index_name"],
            "KeySchema": index["key_schema"],
            "Projection": index["projection"],
        })
    return {
        "KeySchema": schema["key_schema"],
        "AttributeDefinitions": schema["attribute_definitions"],
        "GlobalSecondaryIndexes": indexes,
    }


def table_ensure(*, table_name: str | None = None, wait_seconds: float = 600,
                 progress: Callable[[str], None] = lambda message: None) -> TableReport:
    """Make the table match the declarations: create it if missing, add missing GSIs one at a
    time (DynamoDB accepts one index creation per UpdateTable), enable TTL on ``ttl``.

    Running it twice changes nothing. Existing indexes are never altered or dropped: a changed
    projection needs a new index name (a manual, deliberate migration)."""
    client = dynamo.connection().client
    name = table_name or SessionMeta.Meta.table_name
    desired = _desired_schema()
    report = TableReport(table_name=name)
    try:
        description = client.describe_table(TableName=name)["Table"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        progress(f"creating table {name}")
        stream = {"StreamSpecification": STREAM_SPECIFICATION} if settings.DYNAMODB_STREAM else {}
        client.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **desired, **stream)
        report.stream_enabled = bool(stream)
        report.created = True
        description = _wait_active(client, name, wait_seconds)
        report.stream_arn = description.get("LatestStreamArn")

    existing = {i["IndexName"] for i in description.get("GlobalSecondaryIndexes", [])}
    defined = {a["AttributeName"]: a for a in desired["AttributeDefinitions"]}
    for index in desired["GlobalSecondaryIndexes"]:
        if index["IndexName"] in existing:
            continue
        progress(f"adding index {index['IndexName']}")
        key_attrs = [defined[k["AttributeName"]] for k in index["KeySchema"]]
        client.update_table(
            TableName=name,
            AttributeDefinitions=key_attrs,
            GlobalSecondaryIndexUpdates=[{"Create": index}],
        )
        report.indexes_added.append(index["IndexName"])
        _wait_active(client, name, wait_seconds)

    ttl = client.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    if ttl.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
        progress(f"enabling TTL on {TTL_ATTRIBUTE}")
        client.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
        )
        report.ttl_enabled = True

    if settings.DYNAMODB_STREAM:
        _stream_ensure(client, name, report, progress)
        report.lease_table_created = lease_table_ensure(table_name=lease_table_name(name))
        if report.lease_table_created:
            progress(f"created the stream consumers' lease table {lease_table_name(name)}")
    return report


def _stream_ensure(client, name: str, report: TableReport, progress: Callable[[str], None]) -> None:
    table = client.describe_table(TableName=name)["Table"]
    spec = table.get("StreamSpecification") or {}
    if spec.get("StreamEnabled"):
        if spec.get("StreamViewType") != STREAM_VIEW_TYPE:
            report.stream_problem = (
                f"the stream's view type is {spec.get('StreamViewType')}, the change feed needs {STREAM_VIEW_TYPE}: "
                f"disable the stream (aws dynamodb update-table --table-name {name} --stream-specification "
                f"StreamEnabled=false) and run dynamodb_init again — consumers then start over on the new stream")
        report.stream_arn = table.get("LatestStreamArn")
        return
    progress(f"enabling the stream ({STREAM_VIEW_TYPE})")
    client.update_table(TableName=name, StreamSpecification=STREAM_SPECIFICATION)
    report.stream_enabled = True
    report.stream_arn = _wait_active(client, name, 600).get("LatestStreamArn")


def _wait_active(client, name: str, wait_seconds: float) -> dict:
    deadline = time.monotonic() + wait_seconds
    while True:
        table = client.describe_table(TableName=name)["Table"]
        busy = table["TableStatus"] != "ACTIVE" or any(
            i.get("IndexStatus") != "ACTIVE" for i in table.get("GlobalSecondaryIndexes", [])
        )
        if not busy:
            return table
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} not ACTIVE after {wait_seconds:.0f}s")
        time.sleep(0.2)


def table_delete(*, table_name: str) -> None:
    """Drop a table and its stream consumers' lease table (tests and local resets only)."""
    client = dynamo.connection().client
    try:
        client.delete_table(TableName=table_name)
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
    lease_table_delete(table_name=lease_table_name(table_name))
