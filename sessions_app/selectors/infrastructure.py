"""The console's infrastructure page (Supervisor): the session table's configuration and state,
its indexes, TTL, stream, point-in-time recovery, backups and consumed capacity; the DAX cluster;
Redis.

One function per source, each answering a dataclass with ``available`` and ``error``: a call the
endpoint does not support (DynamoDB Local has no DescribeContinuousBackups, ListBackups nor
CloudWatch metrics), refuses (AccessDenied) or cannot be reached is that panel's "unavailable"
with the reason, never the page's 500. Each answer, failures too, is kept per process for
``CACHE_SECONDS`` (keyed by the table and the endpoint): the page is cheap to reload and never
hammers the control plane (DescribeTable and friends have low per-account rate limits).

Only control-plane and metric reads: Describe*/List* on the table, CloudWatch GetMetricData,
Redis INFO, the DAX nodes' stats endpoints — never a Scan or Query of the data.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from redis import exceptions as rx
from redis.cluster import RedisCluster

from .. import dynamo
from ..clock import utcnow
from ..exceptions import RedisUnavailable
from ..realtime import redis_boundary, redis_connection
from .dax_cache import cloudwatch_client
from .dax_nodes import DaxClusterView, dax_cluster

CACHE_SECONDS = 30.0
# Consumed capacity: the Sum of the last five whole minutes (one-minute datapoints), per second.
CONSUMED_WINDOW_SECONDS = 300
CONSUMED_PERIOD_SECONDS = 60
CLOUDWATCH_NAMESPACE = "AWS/DynamoDB"
# ListBackups pages (100 each) read at most to find the newest backup.
BACKUP_PAGES_MAX = 20
ERROR_MAX_CHARS = 300
_UNSUPPORTED = frozenset({"UnknownOperationException"})

T = TypeVar("T")


def utc_text(value: datetime | None) -> str | None:
    """``2025-01-31 12:00:03 UTC`` (botocore hands out aware datetimes, in UTC or local time)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# --- the per-process cache ------------------------------------------------------------------------

_cache: dict[tuple, tuple[float, Any]] = {}
_cache_lock = threading.Lock()


def _cached(key: tuple, read: Callable[[], T]) -> T:
    now = time.monotonic()
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1]
    value = read()
    with _cache_lock:
        _cache[key] = (time.monotonic(), value)
    return value


def infrastructure_cache_clear() -> None:
    """Forget every cached answer (tests; a settings change)."""
    with _cache_lock:
        _cache.clear()


# --- errors ---------------------------------------------------------------------------------------

def _local_endpoint() -> bool:
    """DYNAMODB_ENDPOINT set outside production is DynamoDB Local (settings: "set to DynamoDB
    Local locally"); in production it is unset, or an AWS (VPC/FIPS) endpoint."""
    return bool(settings.DYNAMODB_ENDPOINT) and not settings.PRODUCTION


def _endpoint_label(endpoint: str | None) -> str:
    if _local_endpoint() and (endpoint is None or endpoint.rstrip("/") == str(settings.DYNAMODB_ENDPOINT).rstrip("/")):
        return "DynamoDB Local"
    return endpoint or settings.AWS_REGION


def _reason(operation: str, exc: BaseException, *, endpoint: str | None = None) -> str:
    """What the page says about a failed call: the operation, and the error's code and message."""
    code = dynamo.error_code(exc)
    if code in _UNSUPPORTED:
        text = f"{operation} is not supported by this endpoint ({_endpoint_label(endpoint)}): {code}"
    elif code:
        message = exc.response.get("Error", {}).get("Message") or ""  # type: ignore[attr-defined]
        text = f"{operation} failed: {code}: {message}".rstrip(": ")
    else:
        text = f"{operation} failed: {type(exc).__name__}: {exc}"
    return text[:ERROR_MAX_CHARS]


_AWS_ERRORS = (ClientError, BotoCoreError)


def _table(table: str | None) -> str:
    return table or settings.DYNAMODB_TABLE


def _dynamodb(client):
    return client if client is not None else dynamo.connection().client


def _endpoint_of(client) -> str:
    return str(getattr(client.meta, "endpoint_url", "") or "")


# --- DescribeTable ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class IndexRow:
    name: str
    kind: str  # "GSI" or "LSI"
    keys: str  # "pk (HASH), sk (RANGE)"
    projection: str
    status: str | None  # IndexStatus (GSIs only): CREATING, UPDATING, DELETING, ACTIVE
    backfilling: bool | None  # GSIs only, while an index is created on a table holding items
    item_count: int | None
    size_bytes: int | None
    read_units: int | None  # provisioned; None for LSIs (they share the table's)
    write_units: int | None


@dataclass(frozen=True)
class ReplicaRow:
    region: str
    status: str | None
    status_description: str | None
    progress: str | None  # ReplicaStatusPercentProgress while creating
    kms_key: str | None
    table_class: str | None


@dataclass(frozen=True)
class TableInfo:
    """DescribeTable of the session table."""

    table: str
    available: bool
    error: str | None = None
    read_at: datetime | None = None
    status: str | None = None
    arn: str | None = None
    created_at: datetime | None = None
    item_count: int | None = None  # DynamoDB refreshes these about every six hours
    size_bytes: int | None = None
    billing_mode: str | None = None  # PAY_PER_REQUEST or PROVISIONED
    pay_per_request_since: datetime | None = None  # BillingModeSummary.LastUpdateToPayPerRequestDateTime
    read_units: int | None = None  # provisioned throughput (0 on demand)
    write_units: int | None = None
    last_increase_at: datetime | None = None
    last_decrease_at: datetime | None = None
    decreases_today: int | None = None
    indexes: list[IndexRow] = field(default_factory=list)
    sse_status: str | None = None  # None: DynamoDB's own (AWS owned) key
    sse_type: str | None = None
    sse_kms_key: str | None = None
    table_class: str | None = None
    deletion_protection: bool | None = None
    stream_enabled: bool = False
    stream_view_type: str | None = None
    stream_arn: str | None = None
    stream_label: str | None = None
    global_table_version: str | None = None
    replicas: list[ReplicaRow] = field(default_factory=list)

    @property
    def on_demand(self) -> bool:
        return self.billing_mode == "PAY_PER_REQUEST"

    @property
    def created_utc(self) -> str | None:
        return utc_text(self.created_at)

    @property
    def pay_per_request_since_utc(self) -> str | None:
        return utc_text(self.pay_per_request_since)

    @property
    def last_increase_utc(self) -> str | None:
        return _real_time(self.last_increase_at)

    @property
    def last_decrease_utc(self) -> str | None:
        return _real_time(self.last_decrease_at)

    @property
    def read_utc(self) -> str | None:
        return utc_text(self.read_at)

    @property
    def gsi_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.indexes if i.kind == "GSI")


def _real_time(value: datetime | None) -> str | None:
    """A capacity change time; the epoch (what DynamoDB Local answers for "never") is None."""
    if value is None or value.timestamp() <= 0:
        return None
    return utc_text(value)


def _keys(schema: list[dict]) -> str:
    return ", ".join(f"{k.get('AttributeName')} ({k.get('KeyType')})" for k in schema or [])


def _projection(projection: dict | None) -> str:
    projection = projection or {}
    kind = str(projection.get("ProjectionType") or "?")
    extra = projection.get("NonKeyAttributes") or []
    return f"{kind}: {', '.join(extra)}" if extra else kind


def _by_name(index: dict) -> str:
    return str(index.get("IndexName", ""))  # DynamoDB lists indexes in no particular order


def _index_rows(description: dict) -> list[IndexRow]:
    rows = []
    for index in sorted(description.get("GlobalSecondaryIndexes") or [], key=_by_name):
        throughput = index.get("ProvisionedThroughput") or {}
        rows.append(IndexRow(
            name=index.get("IndexName", "?"), kind="GSI", keys=_keys(index.get("KeySchema")),
            projection=_projection(index.get("Projection")), status=index.get("IndexStatus"),
            backfilling=index.get("Backfilling"), item_count=index.get("ItemCount"),
            size_bytes=index.get("IndexSizeBytes"), read_units=throughput.get("ReadCapacityUnits"),
            write_units=throughput.get("WriteCapacityUnits"),
        ))
    for index in sorted(description.get("LocalSecondaryIndexes") or [], key=_by_name):
        rows.append(IndexRow(
            name=index.get("IndexName", "?"), kind="LSI", keys=_keys(index.get("KeySchema")),
            projection=_projection(index.get("Projection")), status=None, backfilling=None,
            item_count=index.get("ItemCount"), size_bytes=index.get("IndexSizeBytes"), read_units=None,
            write_units=None,
        ))
    return rows


def _replica_rows(description: dict) -> list[ReplicaRow]:
    rows = []
    for replica in description.get("Replicas") or []:
        progress = replica.get("ReplicaStatusPercentProgress")
        rows.append(ReplicaRow(
            region=replica.get("RegionName", "?"), status=replica.get("ReplicaStatus"),
            status_description=replica.get("ReplicaStatusDescription"),
            progress=f"{progress} %" if progress else None, kms_key=replica.get("KMSMasterKeyId"),
            table_class=(replica.get("ReplicaTableClassSummary") or {}).get("TableClass"),
        ))
    return rows


def table_info_from(description: dict, *, table: str, read_at: datetime | None = None) -> TableInfo:
    """A DescribeTable ``Table`` as the page shows it."""
    billing = description.get("BillingModeSummary") or {}
    throughput = description.get("ProvisionedThroughput") or {}
    sse = description.get("SSEDescription") or {}
    stream = description.get("StreamSpecification") or {}
    return TableInfo(
        table=table, available=True, read_at=read_at,
        status=description.get("TableStatus"), arn=description.get("TableArn"),
        created_at=description.get("CreationDateTime"),
        item_count=description.get("ItemCount"), size_bytes=description.get("TableSizeBytes"),
        # A table created provisioned and never switched has no BillingModeSummary.
        billing_mode=billing.get("BillingMode") or "PROVISIONED",
        pay_per_request_since=billing.get("LastUpdateToPayPerRequestDateTime"),
        read_units=throughput.get("ReadCapacityUnits"), write_units=throughput.get("WriteCapacityUnits"),
        last_increase_at=throughput.get("LastIncreaseDateTime"),
        last_decrease_at=throughput.get("LastDecreaseDateTime"),
        decreases_today=throughput.get("NumberOfDecreasesToday"),
        indexes=_index_rows(description),
        sse_status=sse.get("Status"), sse_type=sse.get("SSEType"), sse_kms_key=sse.get("KMSMasterKeyArn"),
        table_class=(description.get("TableClassSummary") or {}).get("TableClass") or "STANDARD",
        deletion_protection=description.get("DeletionProtectionEnabled"),
        stream_enabled=bool(stream.get("StreamEnabled")), stream_view_type=stream.get("StreamViewType"),
        stream_arn=description.get("LatestStreamArn"), stream_label=description.get("LatestStreamLabel"),
        global_table_version=description.get("GlobalTableVersion"),
        replicas=_replica_rows(description),
    )


def table_description(*, table: str | None = None, client=None) -> TableInfo:
    """DescribeTable: status, size, capacity mode and throughput, indexes, SSE, table class,
    deletion protection, stream, replicas."""
    table, client = _table(table), _dynamodb(client)
    endpoint = _endpoint_of(client)

    def read() -> TableInfo:
        try:
            description = client.describe_table(TableName=table)["Table"]
        except _AWS_ERRORS as exc:
            return TableInfo(table=table, available=False, error=_reason("DescribeTable", exc, endpoint=endpoint),
                             read_at=utcnow())
        return table_info_from(description, table=table, read_at=utcnow())

    return _cached(("describe_table", table, endpoint), read)


# --- DescribeTimeToLive -----------------------------------------------------------------------------

@dataclass(frozen=True)
class TtlInfo:
    table: str
    available: bool
    error: str | None = None
    read_at: datetime | None = None
    status: str | None = None  # ENABLED, ENABLING, DISABLING, DISABLED
    attribute: str | None = None

    @property
    def enabled(self) -> bool:
        return self.status == "ENABLED"


def table_ttl(*, table: str | None = None, client=None) -> TtlInfo:
    table, client = _table(table), _dynamodb(client)
    endpoint = _endpoint_of(client)

    def read() -> TtlInfo:
        try:
            ttl = client.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
        except _AWS_ERRORS as exc:
            return TtlInfo(table=table, available=False, error=_reason("DescribeTimeToLive", exc, endpoint=endpoint),
                           read_at=utcnow())
        return TtlInfo(table=table, available=True, read_at=utcnow(), status=ttl.get("TimeToLiveStatus"),
                       attribute=ttl.get("AttributeName"))

    return _cached(("describe_ttl", table, endpoint), read)


# --- DescribeContinuousBackups (point-in-time recovery) --------------------------------------------

@dataclass(frozen=True)
class PitrInfo:
    table: str
    available: bool
    error: str | None = None
    read_at: datetime | None = None
    continuous_backups: str | None = None  # ContinuousBackupsStatus
    status: str | None = None  # PointInTimeRecoveryStatus: ENABLED, DISABLED
    recovery_period_days: int | None = None
    earliest_restorable_at: datetime | None = None
    latest_restorable_at: datetime | None = None

    @property
    def enabled(self) -> bool:
        return self.status == "ENABLED"

    @property
    def earliest_restorable_utc(self) -> str | None:
        return utc_text(self.earliest_restorable_at)

    @property
    def latest_restorable_utc(self) -> str | None:
        return utc_text(self.latest_restorable_at)


def table_pitr(*, table: str | None = None, client=None) -> PitrInfo:
    table, client = _table(table), _dynamodb(client)
    endpoint = _endpoint_of(client)

    def read() -> PitrInfo:
        try:
            described = client.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"]
        except _AWS_ERRORS as exc:
            return PitrInfo(table=table, available=False, read_at=utcnow(),
                            error=_reason("DescribeContinuousBackups", exc, endpoint=endpoint))
        pitr = described.get("PointInTimeRecoveryDescription") or {}
        return PitrInfo(
            table=table, available=True, read_at=utcnow(), continuous_backups=described.get("ContinuousBackupsStatus"),
            status=pitr.get("PointInTimeRecoveryStatus"), recovery_period_days=pitr.get("RecoveryPeriodInDays"),
            earliest_restorable_at=pitr.get("EarliestRestorableDateTime"),
            latest_restorable_at=pitr.get("LatestRestorableDateTime"),
        )

    return _cached(("describe_continuous_backups", table, endpoint), read)


# --- ListBackups (the newest backup of the table) --------------------------------------------------

@dataclass(frozen=True)
class BackupInfo:
    table: str
    available: bool
    error: str | None = None
    read_at: datetime | None = None
    listed: int = 0  # backups of the table ListBackups returned
    complete: bool = True  # False: stopped after BACKUP_PAGES_MAX pages
    name: str | None = None  # the newest; None: the table has no backup
    arn: str | None = None
    status: str | None = None  # CREATING, AVAILABLE, DELETED
    kind: str | None = None  # BackupType: USER, SYSTEM, AWS_BACKUP
    created_at: datetime | None = None
    expires_at: datetime | None = None
    size_bytes: int | None = None

    @property
    def created_utc(self) -> str | None:
        return utc_text(self.created_at)

    @property
    def expires_utc(self) -> str | None:
        return utc_text(self.expires_at)


def table_last_backup(*, table: str | None = None, client=None) -> BackupInfo:
    """The table's newest on-demand backup (every type: ours, AWS Backup's, DynamoDB's own)."""
    table, client = _table(table), _dynamodb(client)
    endpoint = _endpoint_of(client)

    def read() -> BackupInfo:
        request: dict[str, Any] = {"TableName": table, "BackupType": "ALL"}
        newest, listed, complete = None, 0, True
        try:
            for page in range(BACKUP_PAGES_MAX):
                response = client.list_backups(**request)
                for summary in response.get("BackupSummaries") or []:
                    listed += 1
                    created = summary.get("BackupCreationDateTime")
                    if newest is None or (created and (newest.get("BackupCreationDateTime") is None
                                                       or created > newest["BackupCreationDateTime"])):
                        newest = summary
                last = response.get("LastEvaluatedBackupArn")
                if not last:
                    break
                request["ExclusiveStartBackupArn"] = last
                if page == BACKUP_PAGES_MAX - 1:
                    complete = False
        except _AWS_ERRORS as exc:
            return BackupInfo(table=table, available=False, read_at=utcnow(),
                              error=_reason("ListBackups", exc, endpoint=endpoint))
        newest = newest or {}
        return BackupInfo(
            table=table, available=True, read_at=utcnow(), listed=listed, complete=complete,
            name=newest.get("BackupName"), arn=newest.get("BackupArn"), status=newest.get("BackupStatus"),
            kind=newest.get("BackupType"), created_at=newest.get("BackupCreationDateTime"),
            expires_at=newest.get("BackupExpiryDateTime"), size_bytes=newest.get("BackupSizeBytes"),
        )

    return _cached(("list_backups", table, endpoint), read)


# --- consumed capacity (CloudWatch AWS/DynamoDB) ---------------------------------------------------

@dataclass(frozen=True)
class ConsumedRow:
    name: str  # the table, or an index
    index: str | None  # None: the table itself
    read_per_second: float | None  # None: no datapoint in the window (no traffic)
    write_per_second: float | None


@dataclass(frozen=True)
class ConsumedCapacity:
    table: str
    available: bool
    error: str | None = None
    read_at: datetime | None = None
    window_seconds: int = CONSUMED_WINDOW_SECONDS
    start: datetime | None = None
    end: datetime | None = None
    rows: list[ConsumedRow] = field(default_factory=list)

    @property
    def start_utc(self) -> str | None:
        return utc_text(self.start)

    @property
    def end_utc(self) -> str | None:
        return utc_text(self.end)

    def row(self, index: str | None) -> ConsumedRow | None:
        return next((r for r in self.rows if r.index == index), None)


def _metric_queries(table: str, indexes: tuple[str, ...]) -> tuple[list[dict], dict[str, tuple[str | None, str]]]:
    queries, ids = [], {}
    for n, index in enumerate((None, *indexes)):
        dimensions = [{"Name": "TableName", "Value": table}]
        if index is not None:
            dimensions.append({"Name": "GlobalSecondaryIndexName", "Value": index})
        for what, metric in (("read", "ConsumedReadCapacityUnits"), ("write", "ConsumedWriteCapacityUnits")):
            query_id = f"q{n}_{what}"  # lower-case first letter, letters, digits, underscores
            ids[query_id] = (index, what)
            queries.append({"Id": query_id, "ReturnData": True, "MetricStat": {
                "Metric": {"Namespace": CLOUDWATCH_NAMESPACE, "MetricName": metric, "Dimensions": dimensions},
                "Period": CONSUMED_PERIOD_SECONDS, "Stat": "Sum"}})
    return queries, ids


def table_consumed_capacity(*, table: str | None = None, indexes: tuple[str, ...] = (), client=None,
                            now: datetime | None = None) -> ConsumedCapacity:
    """Consumed read/write capacity units per second of the table and each of ``indexes``: the
    Sum of CloudWatch's ``AWS/DynamoDB`` Consumed*CapacityUnits over the last five whole minutes,
    divided by 300 (one GetMetricData). DynamoDB Local publishes no metrics: unavailable there."""
    table, indexes = _table(table), tuple(indexes)
    if client is None and _local_endpoint():
        return ConsumedCapacity(table=table, available=False, read_at=utcnow(), error=(
            "CloudWatch GetMetricData is not supported by this endpoint (DynamoDB Local): "
            f"DynamoDB Local publishes no {CLOUDWATCH_NAMESPACE} metrics"))
    client = client if client is not None else cloudwatch_client()

    def read() -> ConsumedCapacity:
        end = (now or utcnow()).replace(second=0, microsecond=0)
        start = end - timedelta(seconds=CONSUMED_WINDOW_SECONDS)
        queries, ids = _metric_queries(table, indexes)
        totals: dict[tuple[str | None, str], float] = {}
        request: dict[str, Any] = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end,
                                   "ScanBy": "TimestampDescending"}
        try:
            while True:
                response = client.get_metric_data(**request)
                for result in response.get("MetricDataResults") or []:
                    target = ids.get(result.get("Id"))
                    values = result.get("Values") or []
                    if target is not None and values:
                        totals[target] = totals.get(target, 0.0) + sum(values)
                token = response.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
        except _AWS_ERRORS as exc:
            return ConsumedCapacity(table=table, available=False, read_at=utcnow(),
                                    error=_reason("CloudWatch GetMetricData", exc))

        def per_second(index: str | None, what: str) -> float | None:
            total = totals.get((index, what))
            return None if total is None else total / CONSUMED_WINDOW_SECONDS

        rows = [ConsumedRow(name=index or table, index=index, read_per_second=per_second(index, "read"),
                            write_per_second=per_second(index, "write")) for index in (None, *indexes)]
        return ConsumedCapacity(table=table, available=True, read_at=utcnow(), start=start, end=end, rows=rows)

    return _cached(("consumed_capacity", table, indexes, _endpoint_of(client)), read)


# --- DAX --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DaxInfo:
    """DAX as this process uses it, and its nodes. ``dax_cluster``: the local cluster's nodes as
    each one's stats endpoint describes them (the overview's DAX nodes panel reads the same)."""

    available: bool  # the nodes could be read
    error: str | None
    enabled: bool
    endpoints: list[str]
    breaker: str  # closed / open / half-open, or "disabled"
    write_through: bool
    stats_url: str | None
    cluster_name: str | None
    dax_cluster: DaxClusterView | None = None
    note: str | None = None
    read_at: datetime | None = None

    @property
    def read_utc(self) -> str | None:
        return utc_text(self.read_at)


def dax_info() -> DaxInfo:
    """The endpoints and breaker state (this process's, read live) and the nodes (cached)."""
    stats_url, cluster_name = settings.DAX_STATS_URL, settings.DAX_CLUSTER_NAME
    base = {"enabled": dynamo.dax_enabled(), "endpoints": list(settings.DAX_ENDPOINTS),
            "breaker": dynamo.dax_breaker_state(), "write_through": bool(settings.DAX_WRITE_THROUGH),
            "stats_url": stats_url, "cluster_name": cluster_name}
    if not stats_url:
        if cluster_name:
            note = (f"production DAX has no stats endpoint: per-node metrics are in CloudWatch "
                    f"(AWS/DAX, ClusterId={cluster_name}, NodeId) in {settings.AWS_REGION}")
        else:
            note = "per-node metrics in CloudWatch (AWS/DAX) for a production cluster; set DAX_CLUSTER_NAME"
        return DaxInfo(available=False, error="no per-node stats endpoint: DAX_STATS_URL is unset", note=note,
                       read_at=utcnow(), **base)

    def read() -> tuple[DaxClusterView | None, datetime]:
        return dax_cluster(url=stats_url), utcnow()

    cluster, read_at = _cached(("dax_cluster", stats_url), read)
    if cluster is None:
        return DaxInfo(available=False, error=f"the DAX stats endpoint ({stats_url}) did not answer",
                       read_at=read_at, **base)
    return DaxInfo(available=True, error=None, dax_cluster=cluster, read_at=read_at, **base)


# --- Redis ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class RedisInfo:
    available: bool
    error: str | None = None
    read_at: datetime | None = None
    version: str | None = None
    mode: str | None = None  # redis_mode: standalone, cluster, sentinel
    cluster_enabled: bool | None = None
    role: str | None = None
    connected_replicas: int | None = None
    used_memory: str | None = None  # used_memory_human
    used_memory_peak: str | None = None
    maxmemory: str | None = None  # maxmemory_human; "0B": no limit
    maxmemory_policy: str | None = None
    evicted_keys: int | None = None
    expired_keys: int | None = None
    keyspace_hits: int | None = None
    keyspace_misses: int | None = None
    uptime_seconds: int | None = None

    @property
    def hit_ratio(self) -> float | None:
        if self.keyspace_hits is None or self.keyspace_misses is None:
            return None
        total = self.keyspace_hits + self.keyspace_misses
        return self.keyspace_hits / total if total else None

    @property
    def unlimited_memory(self) -> bool:
        return self.maxmemory in ("0B", "0")

    @property
    def read_utc(self) -> str | None:
        return utc_text(self.read_at)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_SUMMED = ("evicted_keys", "expired_keys", "keyspace_hits", "keyspace_misses")


def _cluster_info(client: RedisCluster, section: str) -> dict:
    per_node = client.info(section, target_nodes=RedisCluster.PRIMARIES)
    if not isinstance(per_node, dict) or not per_node:
        return {}
    rows = [v for v in per_node.values() if isinstance(v, dict)] or [per_node]
    merged = dict(rows[0])
    for field in _SUMMED:
        if field in merged:
            merged[field] = sum(_int(r.get(field)) or 0 for r in rows)
    if section == "replication":
        merged["role"] = f"{len(rows)} primaries"
    return merged


def redis_info() -> RedisInfo:
    """INFO server, memory, stats, replication and cluster (one pipelined round trip)."""
    location = settings.CACHES["default"].get("LOCATION")

    def read() -> RedisInfo:
        sections = ("server", "memory", "stats", "replication", "cluster")
        try:
            with redis_boundary("infrastructure_info"):
                client = redis_connection()
                if isinstance(client, RedisCluster):
                    # A cluster pipeline refuses INFO (it has no key to route by): ask every
                    # primary, show the first one's settings and the primaries' summed counters.
                    server, memory, stats, replication, cluster = (
                        _cluster_info(client, section) for section in sections)
                else:
                    pipe = client.pipeline(transaction=False)
                    for section in sections:
                        pipe.info(section)
                    server, memory, stats, replication, cluster = pipe.execute()
        except RedisUnavailable as exc:
            cause = exc.__cause__
            detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
            return RedisInfo(available=False, read_at=utcnow(), error=f"Redis unavailable{detail}"[:ERROR_MAX_CHARS])
        except rx.ResponseError as exc:  # INFO refused or renamed (a managed Redis may do that)
            return RedisInfo(available=False, read_at=utcnow(), error=f"INFO failed: {exc}"[:ERROR_MAX_CHARS])
        enabled = cluster.get("cluster_enabled")
        return RedisInfo(
            available=True, read_at=utcnow(),
            version=str(server.get("redis_version")) if server.get("redis_version") is not None else None,
            mode=server.get("redis_mode"), cluster_enabled=None if enabled is None else bool(_int(enabled)),
            role=replication.get("role"), connected_replicas=_int(replication.get("connected_slaves")),
            used_memory=memory.get("used_memory_human"), used_memory_peak=memory.get("used_memory_peak_human"),
            maxmemory=memory.get("maxmemory_human"), maxmemory_policy=memory.get("maxmemory_policy"),
            evicted_keys=_int(stats.get("evicted_keys")), expired_keys=_int(stats.get("expired_keys")),
            keyspace_hits=_int(stats.get("keyspace_hits")), keyspace_misses=_int(stats.get("keyspace_misses")),
            uptime_seconds=_int(server.get("uptime_in_seconds")),
        )

    return _cached(("redis_info", str(location)), read)


# --- the page ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CapacityRow:
    """Provisioned against consumed capacity of the table or one GSI."""

    name: str
    index: str | None
    on_demand: bool
    read_units: int | None  # provisioned; None on demand
    write_units: int | None
    consumed_read: float | None  # per second; None: unknown or no datapoint
    consumed_write: float | None

    @property
    def read_utilisation(self) -> float | None:
        return self.consumed_read / self.read_units if self.read_units and self.consumed_read is not None else None

    @property
    def write_utilisation(self) -> float | None:
        return self.consumed_write / self.write_units if self.write_units and self.consumed_write is not None else None


@dataclass(frozen=True)
class Infrastructure:
    table: TableInfo
    ttl: TtlInfo
    pitr: PitrInfo
    backup: BackupInfo
    consumed: ConsumedCapacity
    capacity: list[CapacityRow]
    dax: DaxInfo
    redis: RedisInfo
    cache_seconds: float


def _capacity_rows(table: TableInfo, consumed: ConsumedCapacity) -> list[CapacityRow]:
    if not table.available:
        return []
    on_demand = table.on_demand
    rows = []
    for name, index, read_units, write_units in [(table.table, None, table.read_units, table.write_units)] + [
            (i.name, i.name, i.read_units, i.write_units) for i in table.indexes if i.kind == "GSI"]:
        used = consumed.row(index) if consumed.available else None
        rows.append(CapacityRow(
            name=name, index=index, on_demand=on_demand,
            read_units=None if on_demand else read_units, write_units=None if on_demand else write_units,
            consumed_read=used.read_per_second if used else None,
            consumed_write=used.write_per_second if used else None,
        ))
    return rows


def infrastructure(*, table: str | None = None) -> Infrastructure:
    """Everything the infrastructure page shows, each part from its own (cached) read."""
    described = table_description(table=table)
    consumed = table_consumed_capacity(table=described.table, indexes=described.gsi_names)
    return Infrastructure(
        table=described, ttl=table_ttl(table=table), pitr=table_pitr(table=table),
        backup=table_last_backup(table=table), consumed=consumed, capacity=_capacity_rows(described, consumed),
        dax=dax_info(), redis=redis_info(), cache_seconds=CACHE_SECONDS,
    )
