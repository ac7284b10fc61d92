"""Create or update the DynamoDB table: key schema, indexes, TTL, the stream and the rest of its
configuration from settings (``table_config``). Idempotent: running it twice changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from botocore.exceptions import ClientError

from django.conf import settings

from .. import dynamo
from ..models import SessionMeta
from ..streams.leases import lease_table_delete, lease_table_name
from .table_config import (
    INDEX,
    LEASES,
    STREAM,
    STREAM_SPECIFICATION,
    STREAM_VIEW_TYPE,
    TABLE,
    TTL,
    TTL_ATTRIBUTE,
    Plan,
    PlannedCall,
    TableConfigError,
    clients_for,
    desired_config,
    desired_schema,
    endpoint_is_aws,
    plan_apply,
    table_plan,
    wait_active,
)

__all__ = ["STREAM_SPECIFICATION", "STREAM_VIEW_TYPE", "TTL_ATTRIBUTE", "TableConfigError", "TableReport", "table_delete",
           "table_ensure", "table_ensure_plan"]

# Older names, still imported by tests and tools.
_desired_schema = desired_schema
_wait_active = wait_active


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
    # The plan that was applied (its blocked messages included), and the calls made.
    plan: Plan | None = None
    applied: list[PlannedCall] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.applied) or self.created or bool(self.indexes_added) or self.ttl_enabled \
            or self.stream_enabled or self.lease_table_created

    @property
    def configured(self) -> list[str]:
        """The settings whose calls were applied, beyond creation, indexes, TTL and the stream."""
        return list(dict.fromkeys(c.setting for c in self.applied if c.concern not in (TABLE, INDEX, TTL, STREAM, LEASES)))


def table_ensure_plan(*, table_name: str | None = None) -> Plan:
    """What :func:`table_ensure` would do now: the plan, nothing applied (``dynamodb_init --plan``)."""
    name = table_name or SessionMeta.Meta.table_name
    desired = desired_config()
    clients = clients_for(desired)
    return table_plan(clients["dynamodb"], name, desired, autoscaling_client=clients.get("application-autoscaling"),
                      lease_table=lease_table_name(name) if settings.DYNAMODB_STREAM else None)


def table_ensure(*, table_name: str | None = None, wait_seconds: float = 600,
                 progress: Callable[[str], None] = lambda message: None, plan: Plan | None = None) -> TableReport:
    """Make the table match the declarations and the settings: create it if missing (with
    everything CreateTable takes), add missing GSIs one at a time (DynamoDB accepts one index
    creation per UpdateTable), TTL on ``ttl``, the stream and its consumers' lease table, then
    capacity, encryption, table class, deletion protection, PITR, tags, auto scaling, replicas —
    the calls of :func:`table_config.table_plan`, or of ``plan`` (one already printed).

    Existing indexes are never altered or dropped: a changed projection needs a new index name
    (a manual, deliberate migration). Raises TableConfigError when a call is refused."""
    name = table_name or SessionMeta.Meta.table_name
    clients = clients_for(desired_config())
    client = clients["dynamodb"]
    if plan is None:
        plan = table_ensure_plan(table_name=name)
    report = TableReport(table_name=name, plan=plan)
    report.stream_problem = next((b.message for b in plan.blocked if b.setting == "DYNAMODB_STREAM"), None)
    try:
        report.applied = plan_apply(plan, clients, progress, wait_seconds=wait_seconds)
    except TableConfigError as exc:
        _count(report, exc.applied)
        raise
    _count(report, report.applied)
    try:
        report.stream_arn = client.describe_table(TableName=name)["Table"].get("LatestStreamArn")
    except ClientError as exc:
        if dynamo.error_code(exc) != "ResourceNotFoundException":
            raise
    return report


def _count(report: TableReport, applied: list[PlannedCall]) -> None:
    for call in applied:
        if call.concern == TABLE:
            report.created = True
            report.stream_enabled = "StreamSpecification" in call.params
        elif call.concern == INDEX:
            report.indexes_added.append(call.params["GlobalSecondaryIndexUpdates"][0]["Create"]["IndexName"])
        elif call.concern == TTL:
            report.ttl_enabled = True
        elif call.concern == STREAM:
            report.stream_enabled = True
        elif call.concern == LEASES:
            report.lease_table_created = True


def table_delete(*, table_name: str) -> None:
    """Drop a table and its stream consumers' lease table (tests and local resets only). A table
    with deletion protection on is unprotected first — on DynamoDB Local only: on AWS that is a
    deliberate act of its own (aws dynamodb update-table --no-deletion-protection-enabled)."""
    client = dynamo.connection().client
    try:
        protected = client.describe_table(TableName=table_name)["Table"].get("DeletionProtectionEnabled")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        protected = None
    if protected:
        if endpoint_is_aws():
            raise TableConfigError(f"table {table_name} has deletion protection on: table_delete does not turn it off on AWS")
        client.update_table(TableName=table_name, DeletionProtectionEnabled=False)
        wait_active(client, table_name, 60)
    if protected is not None:
        try:
            client.delete_table(TableName=table_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceNotFoundException":
                raise
    lease_table_delete(table_name=lease_table_name(table_name))
