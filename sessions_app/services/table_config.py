"""The session table's whole configuration, from settings (mangaassist/settings.py, "The table's
configuration"): read what the table is, plan the calls that make it what the settings say, then
apply them in order. ``manage.py dynamodb_init`` prints the plan first (``--plan``: only that).

A plan is a list of :class:`PlannedCall` — the exact boto3 operation and keyword arguments, and
the setting that asks for it — plus :class:`Blocked` messages: what the settings ask for but this
run will not do (a limit of DynamoDB's, or a change that destroys data). Planning only reads;
a plan of a table that is as the settings say is empty, so running dynamodb_init again changes
nothing.

One concern per UpdateTable call: DynamoDB takes one kind of change at a time (a capacity change,
one index creation, the stream, encryption, the table class, deletion protection, one replica),
and the table must be ACTIVE again before the next one.

Settings that are off are not managed at all — neither read nor reverted — where reverting them
is a deliberate act or needs permissions the deploy role only has when the setting is on
(sessions_app/iam.py grants PITR, tag and auto scaling actions by setting):

- ``DYNAMODB_PITR=0`` leaves point-in-time recovery as it is: turning it off throws away the
  restore window;
- ``DYNAMODB_TAGS`` empty leaves the tags alone; when set, the table's tags are exactly those
  (except ``aws:`` tags, which are AWS's own);
- ``DYNAMODB_AUTOSCALING=0`` leaves scalable targets alone (deregister them by hand: they would
  otherwise keep moving the capacity this plan sets);
- a replica in a region no longer listed is never deleted (that deletes the region's data): the
  plan says how to.

DynamoDB Local (measured, 2.x): takes PROVISIONED capacity and its changes (table and indexes),
deletion protection, TTL and streams; accepts SSESpecification, TableClass and Tags in CreateTable
but ignores them; answers UpdateTable with only SSE, a table class or ReplicaUpdates with
"Nothing to update"; has no PITR, tags or backups (UnknownOperationException), and there is no
Application Auto Scaling next to it. The default settings plan nothing of those, so ``make run``
and the tests never call them; a setting that needs one fails with a message naming it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable
from urllib.parse import urlsplit

from botocore import xform_name
from botocore.exceptions import ClientError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .. import dynamo
from ..clock import utcnow
from ..models import SessionMeta
from ..streams.leases import lease_table_ensure

TTL_ATTRIBUTE = "ttl"
# The change feed needs both images: what a change was from, and to (docs/architecture.md §Change feed).
STREAM_VIEW_TYPE = "NEW_AND_OLD_IMAGES"
STREAM_SPECIFICATION = {"StreamEnabled": True, "StreamViewType": STREAM_VIEW_TYPE}

DYNAMODB = "dynamodb"
AUTOSCALING = "application-autoscaling"
PAY_PER_REQUEST, PROVISIONED = "PAY_PER_REQUEST", "PROVISIONED"
AWS_OWNED, AWS_MANAGED, CUSTOMER = "aws-owned", "aws-managed", "customer"
# DynamoDB's own KMS key: named explicitly when switching to it, so that a customer key in use
# is replaced rather than kept (an SSESpecification without a key leaves the choice to DynamoDB).
AWS_MANAGED_KEY = "alias/aws/dynamodb"
STANDARD = "STANDARD"
# Switching a table to on-demand is limited per 24 hours; DescribeTable tells only the last
# switch (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/switching.capacitymode.html).
ON_DEMAND_SWITCH_WINDOW = timedelta(hours=24)
# A replica in one of these states is on its way; the others are stuck and said so.
_REPLICA_SETTLING = frozenset({"CREATING", "UPDATING"})
_REPLICA_BUSY = frozenset({"CREATING", "UPDATING", "DELETING"})
# What an endpoint without the operation answers (DynamoDB Local).
_UNSUPPORTED = frozenset({"UnknownOperationException"})
# Right after CreateTable, DynamoDB may not take UpdateContinuousBackups yet.
_PITR_NOT_YET = "ContinuousBackupsUnavailableException"
# Target tracking on DynamoDB accepts 20–90 percent utilisation.
_TARGET_RANGE = (20.0, 90.0)

# What a call is about (PlannedCall.concern): the table report counts some of them.
TABLE, INDEX, TTL, STREAM, CAPACITY = "table", "index", "ttl", "stream", "capacity"
SSE, TABLE_CLASS, DELETION_PROTECTION, PITR, TAGS = "sse", "table_class", "deletion_protection", "pitr", "tags"
SCALING, REPLICA, LEASES = "autoscaling", "replica", "leases"


class TableConfigError(Exception):
    """A call the plan needs was refused, or could not be made: the message names the setting.
    ``applied``: the calls that were made before it."""

    def __init__(self, message: str, *, applied: list[PlannedCall] | None = None):
        super().__init__(message)
        self.applied = applied or []


# --- what the settings ask for ------------------------------------------------------------------

@dataclass(frozen=True)
class Capacity:
    read: int
    write: int

    def throughput(self) -> dict:
        return {"ReadCapacityUnits": self.read, "WriteCapacityUnits": self.write}


@dataclass(frozen=True)
class Autoscaling:
    min: int
    max: int
    target: float


@dataclass(frozen=True)
class DesiredConfig:
    billing_mode: str = PAY_PER_REQUEST
    capacity: Capacity = Capacity(5, 5)
    # Per index, where it differs from the table's (DYNAMODB_INDEX_CAPACITY).
    index_capacity: dict[str, Capacity] = field(default_factory=dict)
    autoscaling: Autoscaling | None = None  # DYNAMODB_AUTOSCALING on
    pitr: bool = False
    deletion_protection: bool = False
    sse: str = AWS_OWNED
    kms_key: str | None = None
    table_class: str = STANDARD
    tags: dict[str, str] = field(default_factory=dict)
    replica_regions: tuple[str, ...] = ()  # other than the home region
    stream: bool = True
    region: str = "us-east-1"

    @property
    def provisioned(self) -> bool:
        return self.billing_mode == PROVISIONED

    @property
    def scaled(self) -> bool:
        """Auto scaling applies: it is on and the capacity is provisioned."""
        return self.provisioned and self.autoscaling is not None

    def capacity_of(self, index: str) -> Capacity:
        return self.index_capacity.get(index, self.capacity)


def desired_config() -> DesiredConfig:
    """The configuration the settings ask for (raises ImproperlyConfigured on a malformed value)."""
    indexes = {i["IndexName"] for i in desired_schema()["GlobalSecondaryIndexes"]}
    index_capacity = {}
    for entry in settings.DYNAMODB_INDEX_CAPACITY:
        name, _, units = entry.partition("=")
        read, _, write = units.partition(":")
        if not (read.isdigit() and write.isdigit() and int(read) > 0 and int(write) > 0):
            raise ImproperlyConfigured(f"DYNAMODB_INDEX_CAPACITY: {entry!r} is not index=read:write (whole units, >0)")
        if name.strip() not in indexes:
            raise ImproperlyConfigured(f"DYNAMODB_INDEX_CAPACITY: no index {name.strip()!r} (indexes: {', '.join(sorted(indexes))})")
        index_capacity[name.strip()] = Capacity(int(read), int(write))
    tags = {}
    for entry in settings.DYNAMODB_TAGS:
        key, sep, value = entry.partition("=")
        if not sep or not key.strip():
            raise ImproperlyConfigured(f"DYNAMODB_TAGS: {entry!r} is not key=value")
        tags[key.strip()] = value.strip()
    autoscaling = None
    if settings.DYNAMODB_AUTOSCALING:
        autoscaling = Autoscaling(settings.DYNAMODB_AUTOSCALING_MIN, settings.DYNAMODB_AUTOSCALING_MAX,
                                  float(settings.DYNAMODB_AUTOSCALING_TARGET))
        if autoscaling.min > autoscaling.max:
            raise ImproperlyConfigured("DYNAMODB_AUTOSCALING_MIN is above DYNAMODB_AUTOSCALING_MAX")
        if not _TARGET_RANGE[0] <= autoscaling.target <= _TARGET_RANGE[1]:
            raise ImproperlyConfigured("DYNAMODB_AUTOSCALING_TARGET must be 20–90 (percent utilisation)")
    return DesiredConfig(
        billing_mode=settings.DYNAMODB_BILLING_MODE,
        capacity=Capacity(settings.DYNAMODB_READ_CAPACITY, settings.DYNAMODB_WRITE_CAPACITY),
        index_capacity=index_capacity,
        autoscaling=autoscaling,
        pitr=settings.DYNAMODB_PITR,
        deletion_protection=settings.DYNAMODB_DELETION_PROTECTION,
        sse=settings.DYNAMODB_SSE,
        kms_key=settings.DYNAMODB_KMS_KEY if settings.DYNAMODB_SSE == CUSTOMER else None,
        table_class=settings.DYNAMODB_TABLE_CLASS,
        tags=tags,
        replica_regions=tuple(r for r in dict.fromkeys(settings.DYNAMODB_REPLICA_REGIONS) if r != settings.AWS_REGION),
        stream=settings.DYNAMODB_STREAM,
        region=settings.AWS_REGION,
    )


def desired_schema() -> dict:
    """Key schema, attribute definitions and indexes, as SessionMeta declares them."""
    schema = SessionMeta._get_schema()
    indexes = [{"IndexName": i["index_name"], "KeySchema": i["key_schema"], "Projection": i["projection"]}
               for i in schema["global_secondary_indexes"]]
    return {"KeySchema": schema["key_schema"], "AttributeDefinitions": schema["attribute_definitions"],
            "GlobalSecondaryIndexes": indexes}


def endpoint_is_aws() -> bool:
    """Whether DYNAMODB_ENDPOINT is AWS (unset: the regional endpoint) rather than DynamoDB Local."""
    endpoint = settings.DYNAMODB_ENDPOINT
    if not endpoint:
        return True
    host = (urlsplit(endpoint).hostname or "").lower()
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn", ".api.aws"))


# --- the plan -----------------------------------------------------------------------------------

@dataclass
class PlannedCall:
    service: str  # DYNAMODB or AUTOSCALING (the botocore service name)
    operation: str  # the API's operation name, e.g. "UpdateTable"
    params: dict  # the request exactly as it is sent
    why: str  # the setting and value asking for it, e.g. "DYNAMODB_PITR=1"
    setting: str  # the setting's name alone, for messages
    concern: str
    summary: str | None = None  # instead of every parameter (CreateTable, a new index)

    def line(self) -> str:
        """One line of the printed plan: ``UpdateContinuousBackups PointInTimeRecoveryEnabled=true — DYNAMODB_PITR=1``."""
        body = self.summary or _render({k: v for k, v in self.params.items() if k not in _IDENTITY})
        return f"{self.operation} {body} — {self.why}"


@dataclass
class Blocked:
    setting: str
    message: str


@dataclass
class Plan:
    table_name: str
    calls: list[PlannedCall] = field(default_factory=list)
    blocked: list[Blocked] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.calls

    def lines(self) -> list[str]:
        return [call.line() for call in self.calls]


# The identity of what a call is about: the printed plan is about one table already.
_IDENTITY = frozenset({"TableName", "ResourceArn", "ServiceNamespace"})
_ACTIONS = frozenset({"Create", "Update", "Delete"})


def _render(value: Any) -> str:
    """Parameters as ``Name=value`` words: nested structures flattened to their leaves, except
    the Create/Update/Delete of an index or replica update, which keep their name."""
    if isinstance(value, dict):
        parts = []
        for key, item in value.items():
            if isinstance(item, dict):
                parts.append(f"{key} {_render(item)}" if key in _ACTIONS else _render(item))
            elif isinstance(item, list):
                parts.append(f"{key}=[{', '.join(_render(x) for x in item)}]")
            else:
                parts.append(f"{key}={_render(item)}")
        return " ".join(parts)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _env(setting: str, value: Any) -> str:
    """``SETTING=value`` as it would be written in the environment."""
    if isinstance(value, bool):
        value = "1" if value else "0"
    elif isinstance(value, dict):
        value = ",".join(f"{k}={v}" for k, v in value.items())
    elif isinstance(value, (list, tuple)):
        value = ",".join(value)
    return f"{setting}={value}"


# --- reading the table's state ------------------------------------------------------------------

@dataclass
class TableState:
    """What the table is, as far as the planner needs it. ``None`` for a part means "not read" or
    "the endpoint cannot say": its calls are planned as for a part that is not set."""

    description: dict | None  # DescribeTable's Table; None: there is no table
    ttl: dict = field(default_factory=dict)  # DescribeTimeToLive's TimeToLiveDescription
    pitr: bool | None = None
    tags: dict[str, str] | None = None
    targets: dict[tuple[str, str], dict] | None = None  # (resource id, dimension) → scalable target
    policies: dict[tuple[str, str], list[dict]] | None = None
    key_manager: str | None = None  # "AWS" or "CUSTOMER": who owns the table's KMS key
    desired_key_arn: str | None = None  # DYNAMODB_KMS_KEY resolved to a key ARN
    key_problem: str | None = None  # why neither could be found out
    lease_table_missing: bool = False


def _read_optional(setting: str, operation: str, read: Callable[[], Any]) -> Any:
    """A read the setting needs; None when the endpoint does not have the operation."""
    try:
        return read()
    except ClientError as exc:
        if dynamo.error_code(exc) in _UNSUPPORTED:
            return None
        raise TableConfigError(f"{setting}: reading the table's state with {operation} was refused "
                               f"({dynamo.error_code(exc)}: {exc.response['Error'].get('Message', '')})") from exc


def _resources(table_name: str, index_names) -> list[tuple[str, str]]:
    """(kind, Application Auto Scaling resource id) of the table and each index."""
    return [("table", f"table/{table_name}")] + [("index", f"table/{table_name}/index/{i}") for i in sorted(index_names)]


def _index_names(description: dict | None) -> set[str]:
    declared = {i["IndexName"] for i in desired_schema()["GlobalSecondaryIndexes"]}
    existing = {i["IndexName"] for i in (description or {}).get("GlobalSecondaryIndexes", [])}
    return declared | existing


def read_state(client, table_name: str, desired: DesiredConfig, *, autoscaling_client=None, kms_client=None,
               lease_table: str | None = None) -> TableState:
    """Read what the plan depends on — and only what the settings make it depend on (see the
    module docstring): DescribeTable, DescribeTimeToLive; DescribeContinuousBackups with PITR on;
    ListTagsOfResource with tags set; KMS DescribeKey when the table's key must be told apart;
    DescribeScalableTargets/DescribeScalingPolicies with auto scaling on; the lease table."""
    try:
        description = client.describe_table(TableName=table_name)["Table"]
    except ClientError as exc:
        if dynamo.error_code(exc) != "ResourceNotFoundException":
            raise
        description = None
    state = TableState(description=description)
    if lease_table:
        try:
            client.describe_table(TableName=lease_table)
        except ClientError as exc:
            if dynamo.error_code(exc) != "ResourceNotFoundException":
                raise
            state.lease_table_missing = True
    if description is None:
        return state
    state.ttl = client.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    if desired.pitr:
        backups = _read_optional("DYNAMODB_PITR", "DescribeContinuousBackups",
                                 lambda: client.describe_continuous_backups(TableName=table_name))
        if backups is not None:
            status = backups["ContinuousBackupsDescription"].get("PointInTimeRecoveryDescription", {})
            state.pitr = status.get("PointInTimeRecoveryStatus") == "ENABLED"
    if desired.tags:
        def tags():
            pages = client.get_paginator("list_tags_of_resource").paginate(ResourceArn=description["TableArn"])
            return {t["Key"]: t["Value"] for page in pages for t in page.get("Tags", [])}
        state.tags = _read_optional("DYNAMODB_TAGS", "ListTagsOfResource", tags)
    _read_keys(state, desired, kms_client)
    if desired.scaled and autoscaling_client is not None:
        _read_scaling(state, autoscaling_client, table_name, _index_names(description))
    return state


def _sse_of(description: dict) -> tuple[str, str | None]:
    """("aws-owned", None) or ("kms", the key's ARN)."""
    sse = description.get("SSEDescription") or {}
    if sse.get("Status") in ("ENABLED", "ENABLING", "UPDATING") and sse.get("SSEType") == "KMS":
        return "kms", sse.get("KMSMasterKeyArn")
    return AWS_OWNED, None


def _read_keys(state: TableState, desired: DesiredConfig, kms_client) -> None:
    """A KMS-encrypted table whose settings ask for KMS too: whose key is it? DescribeTable only
    gives the key's ARN, so the AWS managed key and a customer key differ only in KMS's
    KeyManager, and an alias in DYNAMODB_KMS_KEY only KMS resolves."""
    kind, arn = _sse_of(state.description)
    if kind != "kms" or desired.sse == AWS_OWNED:
        return
    key = desired.kms_key or ""
    if desired.sse == CUSTOMER and (key.startswith("arn:") and ":key/" in key):
        state.desired_key_arn = key
        return
    if desired.sse == CUSTOMER and not key.startswith(("alias/", "arn:")):
        # A key id: the table's key ARN ends with it.
        state.desired_key_arn = arn if arn and arn.endswith(f"/{key}") else key
        return
    try:
        kms = kms_client or _kms_client()
        if desired.sse == CUSTOMER:
            state.desired_key_arn = kms.describe_key(KeyId=key)["KeyMetadata"].get("Arn")
        else:
            state.key_manager = kms.describe_key(KeyId=arn)["KeyMetadata"].get("KeyManager")
    except ClientError as exc:
        state.key_problem = (f"KMS DescribeKey was refused ({dynamo.error_code(exc)}), so whether the table's key "
                             f"{arn} is the one asked for is unknown: encryption left as it is")


def _kms_client():
    """KMS in the table's region (only to tell keys apart; DynamoDB Local never gets here: it
    reports no encryption)."""
    import botocore.session

    return botocore.session.get_session().create_client("kms", region_name=settings.AWS_REGION)


def _read_scaling(state: TableState, client, table_name: str, index_names) -> None:
    resources = [rid for _, rid in _resources(table_name, index_names)]
    targets: dict[tuple[str, str], dict] = {}
    pages = client.get_paginator("describe_scalable_targets").paginate(ServiceNamespace="dynamodb", ResourceIds=resources)
    for page in pages:
        for target in page["ScalableTargets"]:
            targets[(target["ResourceId"], target["ScalableDimension"])] = target
    policies: dict[tuple[str, str], list[dict]] = {}
    # Policies belong to scalable targets: only resources with one can have any.
    for resource in sorted({rid for rid, _ in targets}):
        pages = client.get_paginator("describe_scaling_policies").paginate(ServiceNamespace="dynamodb", ResourceId=resource)
        for page in pages:
            for policy in page["ScalingPolicies"]:
                policies.setdefault((policy["ResourceId"], policy["ScalableDimension"]), []).append(policy)
    state.targets, state.policies = targets, policies


# --- planning -----------------------------------------------------------------------------------

def table_plan(client, table_name: str, desired: DesiredConfig | None = None, *, autoscaling_client=None,
               kms_client=None, lease_table: str | None = None, now: datetime | None = None) -> Plan:
    """The calls that make the table what ``desired`` (default: the settings) says, in order.
    Only reads. ``lease_table``: also plan the stream consumers' lease table if it is missing."""
    desired = desired or desired_config()
    state = read_state(client, table_name, desired, autoscaling_client=autoscaling_client, kms_client=kms_client,
                       lease_table=lease_table)
    return plan_for_state(state, desired, table_name=table_name, lease_table=lease_table, now=now or utcnow())


def plan_for_state(state: TableState, desired: DesiredConfig, *, table_name: str, lease_table: str | None = None,
                   now: datetime) -> Plan:
    return _Planner(state, desired, table_name, now).plan(lease_table)


class _Planner:
    """One pass over the concerns, in the order the calls must be made; each step sees the table
    as the calls planned before it leave it (``billing``, ``stream_view``)."""

    def __init__(self, state: TableState, desired: DesiredConfig, table_name: str, now: datetime):
        self.state, self.desired, self.name, self.now = state, desired, table_name, now
        self.plan_ = Plan(table_name=table_name)
        table = state.description or {}
        self.billing = (table.get("BillingModeSummary") or {}).get("BillingMode", PROVISIONED)
        self.stream_view = (table.get("StreamSpecification") or {}).get("StreamViewType") if (
            (table.get("StreamSpecification") or {}).get("StreamEnabled")) else None

    def call(self, operation: str, params: dict, *, setting: str, why: str, concern: str, service: str = DYNAMODB,
             summary: str | None = None) -> None:
        self.plan_.calls.append(PlannedCall(service, operation, params, why, setting, concern, summary))

    def block(self, setting: str, message: str) -> None:
        self.plan_.blocked.append(Blocked(setting, message))

    def plan(self, lease_table: str | None) -> Plan:
        if self.state.description is None:
            self.create()
        else:
            self.capacity()
            self.indexes()
            self.stream()
            self.sse()
            self.table_class()
            self.deletion_protection()
            self.tags()
        self.ttl()
        self.pitr()
        self.autoscaling()
        self.replicas()
        if lease_table and self.desired.stream and self.state.lease_table_missing:
            self.call("CreateTable", {"TableName": lease_table}, setting="DYNAMODB_STREAM", concern=LEASES,
                      why="DYNAMODB_STREAM=1 (the stream consumers' leases)",
                      summary=f"{lease_table} (lease_table_ensure: on demand, TTL on ttl)")
        return self.plan_

    # The table is missing: CreateTable takes everything it can.
    def create(self) -> None:
        d, schema = self.desired, desired_schema()
        indexes = [dict(i, ProvisionedThroughput=d.capacity_of(i["IndexName"]).throughput()) if d.provisioned else i
                   for i in schema["GlobalSecondaryIndexes"]]
        params: dict = {"TableName": self.name, "KeySchema": schema["KeySchema"],
                        "AttributeDefinitions": schema["AttributeDefinitions"], "BillingMode": d.billing_mode}
        if indexes:
            params["GlobalSecondaryIndexes"] = indexes
        if d.provisioned:
            params["ProvisionedThroughput"] = d.capacity.throughput()
        if d.stream:
            params["StreamSpecification"] = dict(STREAM_SPECIFICATION)
            self.stream_view = STREAM_VIEW_TYPE
        if d.sse != AWS_OWNED:
            params["SSESpecification"] = self._sse_specification()
        if d.table_class != STANDARD:
            params["TableClass"] = d.table_class
        if d.tags:
            params["Tags"] = [{"Key": k, "Value": v} for k, v in d.tags.items()]
        if d.deletion_protection:
            params["DeletionProtectionEnabled"] = True
        shown = {k: v for k, v in params.items() if k not in ("TableName", "KeySchema", "AttributeDefinitions",
                                                               "GlobalSecondaryIndexes")}
        names = ",".join(i["IndexName"] for i in indexes)
        self.call("CreateTable", params, setting="DYNAMODB_TABLE", concern=TABLE, why=_env("DYNAMODB_TABLE", self.name),
                  summary=f"{_render(shown)} GlobalSecondaryIndexes=[{names}]")
        self.billing = d.billing_mode
        # A new table: TTL off, PITR off, no tags but its own, no scaling, no replicas.
        self.state.ttl, self.state.pitr, self.state.tags = {"TimeToLiveStatus": "DISABLED"}, False, dict(d.tags)
        self.state.targets, self.state.policies = {}, {}

    def capacity(self) -> None:
        d, table = self.desired, self.state.description
        if not d.provisioned:
            if self.billing == PROVISIONED:
                last = (table.get("BillingModeSummary") or {}).get("LastUpdateToPayPerRequestDateTime")
                if last is not None and self.now - last < ON_DEMAND_SWITCH_WINDOW:
                    self.block("DYNAMODB_BILLING_MODE", (
                        f"not switched to on demand: the table last switched to on demand at {last:%Y-%m-%d %H:%M} UTC "
                        f"and DynamoDB limits switches to on demand within 24 hours — run dynamodb_init again after "
                        f"{last + ON_DEMAND_SWITCH_WINDOW:%Y-%m-%d %H:%M} UTC"))
                    return
                self.call("UpdateTable", {"TableName": self.name, "BillingMode": PAY_PER_REQUEST}, concern=CAPACITY,
                          setting="DYNAMODB_BILLING_MODE", why=_env("DYNAMODB_BILLING_MODE", PAY_PER_REQUEST))
                self.billing = PAY_PER_REQUEST
            return
        current = table.get("ProvisionedThroughput") or {}
        existing = table.get("GlobalSecondaryIndexes", [])
        if self.billing != PROVISIONED:
            # DynamoDB wants every index's capacity in the same call as the switch.
            params = {"TableName": self.name, "BillingMode": PROVISIONED, "ProvisionedThroughput": d.capacity.throughput()}
            if existing:
                params["GlobalSecondaryIndexUpdates"] = [
                    {"Update": {"IndexName": i["IndexName"], "ProvisionedThroughput": d.capacity_of(i["IndexName"]).throughput()}}
                    for i in existing]
            self.call("UpdateTable", params, concern=CAPACITY, setting="DYNAMODB_BILLING_MODE",
                      why=_env("DYNAMODB_BILLING_MODE", PROVISIONED))
            self.billing = PROVISIONED
            return
        if d.scaled:
            return  # Application Auto Scaling moves the capacity from here on; setting it back would undo that.
        params = {"TableName": self.name}
        if (current.get("ReadCapacityUnits"), current.get("WriteCapacityUnits")) != (d.capacity.read, d.capacity.write):
            params["ProvisionedThroughput"] = d.capacity.throughput()
        updates = [{"Update": {"IndexName": i["IndexName"], "ProvisionedThroughput": d.capacity_of(i["IndexName"]).throughput()}}
                   for i in existing if _units(i) != d.capacity_of(i["IndexName"])]
        if updates:
            params["GlobalSecondaryIndexUpdates"] = updates
        if len(params) > 1:
            why = [_env("DYNAMODB_READ_CAPACITY", str(d.capacity.read)), _env("DYNAMODB_WRITE_CAPACITY", str(d.capacity.write))]
            if d.index_capacity:
                why.append(_env("DYNAMODB_INDEX_CAPACITY", [f"{k}={v.read}:{v.write}" for k, v in d.index_capacity.items()]))
            self.call("UpdateTable", params, concern=CAPACITY, setting="DYNAMODB_READ_CAPACITY", why=" ".join(why))

    def indexes(self) -> None:
        """Missing indexes, one per call (DynamoDB creates one index per UpdateTable). Existing
        ones are never altered or dropped: a changed projection needs a new index name."""
        schema = desired_schema()
        existing = {i["IndexName"] for i in self.state.description.get("GlobalSecondaryIndexes", [])}
        defined = {a["AttributeName"]: a for a in schema["AttributeDefinitions"]}
        for index in schema["GlobalSecondaryIndexes"]:
            if index["IndexName"] in existing:
                continue
            create = dict(index)
            if self.billing == PROVISIONED:
                create["ProvisionedThroughput"] = self.desired.capacity_of(index["IndexName"]).throughput()
            self.call("UpdateTable", {"TableName": self.name,
                                      "AttributeDefinitions": [defined[k["AttributeName"]] for k in index["KeySchema"]],
                                      "GlobalSecondaryIndexUpdates": [{"Create": create}]},
                      concern=INDEX, setting="SessionMeta", why="declared by SessionMeta",
                      summary=f"GlobalSecondaryIndexUpdates=[Create IndexName={index['IndexName']}"
                              + (f" {_render(create['ProvisionedThroughput'])}]" if "ProvisionedThroughput" in create else "]"))

    def ttl(self) -> None:
        ttl = self.state.ttl
        if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            if ttl.get("AttributeName") not in (None, TTL_ATTRIBUTE):
                self.block("TTL", f"TTL is on attribute {ttl['AttributeName']!r}, sessions expire by {TTL_ATTRIBUTE!r}: "
                                  f"disable it (aws dynamodb update-time-to-live --table-name {self.name} "
                                  f"--time-to-live-specification Enabled=false,AttributeName={ttl['AttributeName']}) "
                                  "and run dynamodb_init again once it is off (DynamoDB takes up to an hour)")
            return
        if ttl.get("TimeToLiveStatus") == "DISABLING":
            self.block("TTL", "TTL is being disabled: run dynamodb_init again once it is off")
            return
        self.call("UpdateTimeToLive", {"TableName": self.name,
                                       "TimeToLiveSpecification": {"Enabled": True, "AttributeName": TTL_ATTRIBUTE}},
                  concern=TTL, setting="TTL", why=f"sessions expire by their {TTL_ATTRIBUTE!r} attribute")

    def stream(self) -> None:
        """The change feed's stream. A stream of another view type is not replaced here (that
        makes a new stream and every consumer starts over on it), it is said instead."""
        if not self.desired.stream:
            return
        if self.stream_view is None:
            self.call("UpdateTable", {"TableName": self.name, "StreamSpecification": dict(STREAM_SPECIFICATION)},
                      concern=STREAM, setting="DYNAMODB_STREAM", why="DYNAMODB_STREAM=1 (the change feed)")
            self.stream_view = STREAM_VIEW_TYPE
        elif self.stream_view != STREAM_VIEW_TYPE:
            self.block("DYNAMODB_STREAM", (
                f"the stream's view type is {self.stream_view}, the change feed needs {STREAM_VIEW_TYPE}: "
                f"disable the stream (aws dynamodb update-table --table-name {self.name} --stream-specification "
                f"StreamEnabled=false) and run dynamodb_init again — consumers then start over on the new stream"))

    def _sse_specification(self) -> dict:
        d = self.desired
        if d.sse == AWS_OWNED:
            return {"Enabled": False}
        return {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": d.kms_key if d.sse == CUSTOMER else AWS_MANAGED_KEY}

    def sse(self) -> None:
        d, state = self.desired, self.state
        kind, arn = _sse_of(state.description)
        if d.sse == AWS_OWNED and kind == AWS_OWNED:
            return
        if d.sse != AWS_OWNED and kind == "kms":
            if state.key_problem:
                self.block("DYNAMODB_SSE", state.key_problem)
                return
            if d.sse == AWS_MANAGED and state.key_manager == "AWS":
                return
            if d.sse == CUSTOMER and state.desired_key_arn == arn:
                return
        why = _env("DYNAMODB_SSE", d.sse) + (" " + _env("DYNAMODB_KMS_KEY", d.kms_key) if d.sse == CUSTOMER else "")
        self.call("UpdateTable", {"TableName": self.name, "SSESpecification": self._sse_specification()},
                  concern=SSE, setting="DYNAMODB_SSE", why=why)

    def table_class(self) -> None:
        current = (self.state.description.get("TableClassSummary") or {}).get("TableClass", STANDARD)
        if current != self.desired.table_class:
            self.call("UpdateTable", {"TableName": self.name, "TableClass": self.desired.table_class}, concern=TABLE_CLASS,
                      setting="DYNAMODB_TABLE_CLASS", why=_env("DYNAMODB_TABLE_CLASS", self.desired.table_class))

    def deletion_protection(self) -> None:
        wanted = self.desired.deletion_protection
        if bool(self.state.description.get("DeletionProtectionEnabled")) != wanted:
            self.call("UpdateTable", {"TableName": self.name, "DeletionProtectionEnabled": wanted},
                      concern=DELETION_PROTECTION, setting="DYNAMODB_DELETION_PROTECTION",
                      why=_env("DYNAMODB_DELETION_PROTECTION", wanted))

    def pitr(self) -> None:
        if self.desired.pitr and not self.state.pitr:
            self.call("UpdateContinuousBackups", {"TableName": self.name,
                                                  "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}},
                      concern=PITR, setting="DYNAMODB_PITR", why="DYNAMODB_PITR=1")

    def tags(self) -> None:
        wanted = self.desired.tags
        if not wanted:
            return
        current = self.state.tags or {}
        arn = self.state.description["TableArn"]
        why = _env("DYNAMODB_TAGS", wanted)
        missing = [{"Key": k, "Value": v} for k, v in wanted.items() if current.get(k) != v]
        if missing:
            self.call("TagResource", {"ResourceArn": arn, "Tags": missing}, concern=TAGS, setting="DYNAMODB_TAGS", why=why)
        extra = [k for k in current if k not in wanted and not k.startswith("aws:")]
        if extra:
            self.call("UntagResource", {"ResourceArn": arn, "TagKeys": extra}, concern=TAGS, setting="DYNAMODB_TAGS", why=why)

    def autoscaling(self) -> None:
        d = self.desired
        if d.autoscaling is None:
            return
        if not d.provisioned:
            self.block("DYNAMODB_AUTOSCALING", "auto scaling is for PROVISIONED capacity: nothing to scale with "
                                               "DYNAMODB_BILLING_MODE=PAY_PER_REQUEST")
            return
        scaling = d.autoscaling
        targets, policies = self.state.targets, self.state.policies
        why = (f"DYNAMODB_AUTOSCALING=1 MIN={scaling.min} MAX={scaling.max} TARGET={scaling.target:g}")
        for kind, resource in _resources(self.name, _index_names(self.state.description)):
            for rw in ("Read", "Write"):
                dimension = f"dynamodb:{kind}:{rw}CapacityUnits"
                target = (targets or {}).get((resource, dimension))
                if target is None or (target["MinCapacity"], target["MaxCapacity"]) != (scaling.min, scaling.max):
                    self.call("RegisterScalableTarget", {
                        "ServiceNamespace": "dynamodb", "ResourceId": resource, "ScalableDimension": dimension,
                        "MinCapacity": scaling.min, "MaxCapacity": scaling.max,
                    }, service=AUTOSCALING, concern=SCALING, setting="DYNAMODB_AUTOSCALING", why=why)
                metric = f"DynamoDB{rw}CapacityUtilization"
                name = f"{metric}:{resource}"
                policy = next((p for p in (policies or {}).get((resource, dimension), []) if p["PolicyName"] == name), None)
                config = (policy or {}).get("TargetTrackingScalingPolicyConfiguration") or {}
                if (policy is None or policy["PolicyType"] != "TargetTrackingScaling"
                        or (config.get("PredefinedMetricSpecification") or {}).get("PredefinedMetricType") != metric
                        or config.get("TargetValue") != scaling.target):
                    self.call("PutScalingPolicy", {
                        "PolicyName": name, "ServiceNamespace": "dynamodb", "ResourceId": resource,
                        "ScalableDimension": dimension, "PolicyType": "TargetTrackingScaling",
                        "TargetTrackingScalingPolicyConfiguration": {
                            "PredefinedMetricSpecification": {"PredefinedMetricType": metric},
                            "TargetValue": scaling.target},
                    }, service=AUTOSCALING, concern=SCALING, setting="DYNAMODB_AUTOSCALING", why=why)

    def replicas(self) -> None:
        """Global tables version 2019.11.21: one replica per UpdateTable. A replica in a region
        that is not listed is never deleted here (that deletes the region's copy of the data)."""
        d, table = self.desired, self.state.description or {}
        current = {r["RegionName"]: r for r in table.get("Replicas", []) if r["RegionName"] != d.region}
        for region, replica in sorted(current.items()):
            if region not in d.replica_regions and replica.get("ReplicaStatus") != "DELETING":
                self.block("DYNAMODB_REPLICA_REGIONS", (
                    f"the replica in {region} is not listed and is kept: deleting it deletes that region's data. "
                    f"If that is meant: aws dynamodb update-table --region {d.region} --table-name {self.name} "
                    f"--replica-updates '[{{\"Delete\": {{\"RegionName\": \"{region}\"}}}}]'"))
        missing = [r for r in d.replica_regions if r not in current]
        for region in d.replica_regions:
            replica = current.get(region)
            if replica is None:
                continue
            status = replica.get("ReplicaStatus", "ACTIVE")
            if status == "DELETING":
                self.block("DYNAMODB_REPLICA_REGIONS", f"the replica in {region} is being deleted: run dynamodb_init "
                                                       "again once it is gone to create it anew")
            elif status != "ACTIVE" and status not in _REPLICA_SETTLING:
                self.block("DYNAMODB_REPLICA_REGIONS", f"the replica in {region} is {status}: "
                                                       f"{replica.get('ReplicaStatusDescription', 'see the DynamoDB console')}")
        if not missing:
            return
        why = _env("DYNAMODB_REPLICA_REGIONS", d.replica_regions)
        problem = None
        if table.get("GlobalTableVersion") == "2017.11.29":
            problem = ("the table is a global table of version 2017.11.29, which UpdateTable cannot add replicas to: "
                       "upgrade it to 2019.11.21 first (DynamoDB console, Global tables)")
        elif self.stream_view != STREAM_VIEW_TYPE:
            problem = f"replicas need the stream with {STREAM_VIEW_TYPE} (DYNAMODB_STREAM=1, see the stream's message)"
        elif self.billing == PROVISIONED and not d.scaled:
            problem = ("replicas need on-demand capacity or auto-scaled provisioned capacity: set "
                       "DYNAMODB_BILLING_MODE=PAY_PER_REQUEST or DYNAMODB_AUTOSCALING=1")
        elif d.sse == CUSTOMER:
            problem = ("the table is encrypted with a customer key, and each replica needs a key of its own region: "
                       f"aws dynamodb update-table --table-name {self.name} --replica-updates "
                       "'[{\"Create\": {\"RegionName\": \"<region>\", \"KMSMasterKeyId\": \"<that region's key>\"}}]'")
        if problem:
            self.block("DYNAMODB_REPLICA_REGIONS", f"replicas in {', '.join(missing)} not created: {problem}")
            return
        for region in missing:
            self.call("UpdateTable", {"TableName": self.name, "ReplicaUpdates": [{"Create": {"RegionName": region}}]},
                      concern=REPLICA, setting="DYNAMODB_REPLICA_REGIONS", why=why)


def _units(index: dict) -> Capacity:
    throughput = index.get("ProvisionedThroughput") or {}
    return Capacity(throughput.get("ReadCapacityUnits", 0), throughput.get("WriteCapacityUnits", 0))


# --- applying -----------------------------------------------------------------------------------

def plan_apply(plan: Plan, clients: dict[str, Any], progress: Callable[[str], None] = lambda message: None, *,
               wait_seconds: float = 600, wait: Callable[[], Any] | None = None,
               sleep: Callable[[float], None] = time.sleep) -> list[PlannedCall]:
    """Make the plan's calls in order; returns them. ``clients``: botocore clients by service
    name (DYNAMODB, AUTOSCALING). A refused call stops the run with a TableConfigError naming
    its setting (what was applied before it stays applied: running again plans the rest).

    The table must be ACTIVE for the next change: after a change to the table (CreateTable,
    UpdateTable) every next call waits for it; after auto scaling's registrations (which may
    update the table's capacity themselves) the next DynamoDB call does. ``wait`` replaces the
    waiting (tests)."""
    wait = wait or (lambda: wait_active(clients[DYNAMODB], plan.table_name, wait_seconds))
    applied: list[PlannedCall] = []
    busy: str | None = None  # the service whose call may have left the table changing
    total = len(plan.calls)
    for number, call in enumerate(plan.calls, 1):
        if busy == DYNAMODB or (busy and call.service == DYNAMODB):
            _wait(wait, call, applied)
            busy = None
        progress(f"[{number}/{total}] {call.line()}")
        if call.concern == LEASES:
            lease_table_ensure(table_name=call.params["TableName"])
            applied.append(call)
            continue
        client = clients.get(call.service)
        if client is None:
            raise TableConfigError(
                f"{call.setting}: {call.operation} needs {call.service}, which has no endpoint here"
                + ("" if endpoint_is_aws() else f" (DYNAMODB_ENDPOINT={settings.DYNAMODB_ENDPOINT} is DynamoDB Local)")
                + _so_far(applied), applied=applied)
        try:
            _send(client, call, sleep)
        except ClientError as exc:
            raise TableConfigError(_refused(call, exc) + _so_far(applied), applied=applied) from exc
        applied.append(call)
        if call.service == DYNAMODB and call.operation in ("CreateTable", "UpdateTable"):
            busy = DYNAMODB
        elif call.operation == "RegisterScalableTarget":
            busy = busy or AUTOSCALING
    if busy:
        _wait(wait, None, applied)
    return applied


def _wait(wait: Callable[[], Any], call: PlannedCall | None, applied: list[PlannedCall]) -> None:
    try:
        wait()
    except TimeoutError as exc:
        before = f" before {call.operation} ({call.why})" if call else ""
        raise TableConfigError(f"{exc}{before}: the change is still under way — run dynamodb_init again later, "
                               "it plans only what is left" + _so_far(applied), applied=applied) from exc


def _send(client, call: PlannedCall, sleep: Callable[[float], None]) -> dict:
    method = getattr(client, xform_name(call.operation))
    for attempt in range(12):
        try:
            return method(**call.params)
        except ClientError as exc:
            if call.operation == "CreateTable" and _created_as_asked(client, call.params, exc):
                return {}
            # A new table takes a moment before it takes PITR ("backups are being enabled").
            if dynamo.error_code(exc) != _PITR_NOT_YET or attempt == 11:
                raise
            sleep(5)
    raise AssertionError("unreachable")


def _created_as_asked(client, params: dict, exc: ClientError) -> bool:
    """Whether a CreateTable refused because the table exists was in fact ours: botocore resends
    a request whose answer timed out (a busy DynamoDB Local takes seconds to create a table with
    many indexes), and the resend then finds the table the first one created. It was ours if the
    table has exactly the keys and indexes we asked for."""
    if dynamo.error_code(exc) != "ResourceInUseException":
        return False
    try:
        table = client.describe_table(TableName=params["TableName"])["Table"]
    except ClientError:
        return False
    indexes = lambda described: sorted(i["IndexName"] for i in described)  # noqa: E731
    return (table.get("KeySchema") == params.get("KeySchema")
            and indexes(table.get("GlobalSecondaryIndexes", [])) == indexes(params.get("GlobalSecondaryIndexes", [])))


def _refused(call: PlannedCall, exc: ClientError) -> str:
    code, message = dynamo.error_code(exc), exc.response.get("Error", {}).get("Message", "")
    text = f"{call.setting}: {call.operation} ({call.why}) was refused — {code}: {message}"
    if not endpoint_is_aws():
        text += (f". DYNAMODB_ENDPOINT={settings.DYNAMODB_ENDPOINT} is not AWS: DynamoDB Local has no point-in-time "
                 f"recovery, encryption settings, table classes, tags, auto scaling or replicas — leave {call.setting} "
                 "at its default locally")
    return text


def _so_far(applied: list[PlannedCall]) -> str:
    if not applied:
        return ""
    return f" ({len(applied)} call(s) before it were applied; dynamodb_init plans only what is left when run again)"


def wait_active(client, name: str, wait_seconds: float) -> dict:
    """The table's description once it, its indexes and its replicas are no longer changing."""
    deadline = time.monotonic() + wait_seconds
    while True:
        table = client.describe_table(TableName=name)["Table"]
        busy = (table["TableStatus"] != "ACTIVE"
                or any(i.get("IndexStatus") != "ACTIVE" for i in table.get("GlobalSecondaryIndexes", []))
                or any(r.get("ReplicaStatus") in _REPLICA_BUSY for r in table.get("Replicas", [])))
        if not busy:
            return table
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} not ACTIVE after {wait_seconds:.0f}s")
        time.sleep(0.2)


def clients_for(desired: DesiredConfig) -> dict[str, Any]:
    """The clients a plan of ``desired`` may need: DynamoDB's, and Application Auto Scaling's when
    auto scaling applies and the endpoint is AWS (DynamoDB Local has none next to it)."""
    clients: dict[str, Any] = {DYNAMODB: dynamo.connection().client}
    if desired.scaled and endpoint_is_aws():
        clients[AUTOSCALING] = dynamo.autoscaling_client()
    return clients
