"""Least-privilege IAM policies for the processes that run this code (``manage.py iam_policy``).

Four roles, one policy each:

- ``web``: gunicorn — the bot's API, the staff console and the admin (privacy deletes included:
  the console runs them in the request), ``/readyz``;
- ``worker``: Celery workers and beat's tasks — summaries, the sweeps, webhook delivery, alert
  evaluation, scheduled backups;
- ``stream``: ``manage.py stream_consume`` (the Lambda of ``sessions_app.aws_lambda`` instead
  needs the stream's actions plus ``dynamodb:ListStreams`` for its event source mapping, and no
  lease table: Lambda keeps the checkpoints);
- ``deploy``: ``manage.py dynamodb_init`` (the table, its indexes, TTL, stream and the lease
  table, the index backfill) and ``manage.py dynamodb_backup``: the control plane, kept out of
  the roles that serve traffic.

The per-role sets below are the operations the code makes, no more:
``tests/management/test_iam_policy.py`` records every DynamoDB and DynamoDB Streams call of a
scripted run of each role's flows and fails if one is not granted by that role's policy — or if
the policy grants a DynamoDB action the run never needed. No action is a wildcard; resources are
exact ARNs, except the index names' and the stream label's own patterns (``…/stream/*``: the
label changes whenever the stream is re-enabled) and the few actions IAM only grants on "*".

Transactions have no IAM action of their own: each item of a TransactWriteItems needs the action
of its kind (PutItem, UpdateItem, DeleteItem, ConditionCheckItem), on DynamoDB and on DAX alike.
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodb.html
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazondynamodbacceleratordax.html

A policy is for one region (``AWS_REGION``): with global tables each region's deployment reads
and writes its own replica, so each region's roles get the policy generated for that region.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

from . import dynamo
from .models import SessionMeta
from .streams.leases import lease_table_name

ROLES = ("web", "worker", "stream", "deploy")

# What an action is granted on.
TABLE = "table"  # the session table
INDEXES = "indexes"  # its global secondary indexes
STREAM = "stream"  # its stream (DynamoDB Streams' actions are dynamodb:…)
LEASES = "leases"  # the stream consumers' lease table
BACKUPS = "backups"  # the session table's backups
ANY = "*"  # actions IAM grants on no particular resource (ListBackups, ListStreams)
KINDS = (TABLE, INDEXES, STREAM, LEASES, BACKUPS, ANY)

_READ = ("GetItem", "BatchGetItem", "Query")
_ITEM_WRITES = ("PutItem", "UpdateItem")

# DynamoDB actions per role and resource, as the code uses them (the derivation test keeps these
# exact). Where they come from:
DYNAMODB: dict[str, dict[str, tuple[str, ...]]] = {
    "web": {
        # Reads: session_get/turns (GetItem, BatchGetItem, Query), listings (index Query, then
        # BatchGetItem of the METAs). Writes: session start (PutItem), close/hand-off (UpdateItem),
        # the append transaction (its Put and Update items), privacy deletes (BatchWriteItem).
        # The console's change-feed panel: the table's stream ARN (DescribeTable) and the
        # consumers' leases (it shows no shards, so no DescribeStream).
        # The Supervisors' infrastructure page: the table, its TTL, PITR and newest backup.
        TABLE: (*_READ, *_ITEM_WRITES, "BatchWriteItem", "DescribeTable", "DescribeTimeToLive",
                "DescribeContinuousBackups"),
        INDEXES: ("Query",),
        LEASES: ("Query",),
        ANY: ("ListBackups",),
    },
    "worker": {
        # Summaries (consistent reads, the summary+META transaction, the due marker), the sweeps
        # (summary_due, by_status and by_owner Queries), webhook delivery (a turn's state); the
        # alert sweep's change-feed lag rule reads the stream ARN and the leases.
        TABLE: (*_READ, *_ITEM_WRITES, "DescribeTable"),
        INDEXES: ("Query",),
        LEASES: ("Query",),
    },
    "stream": {
        # stream_consume: the table's stream ARN (DescribeTable), the stream's shards and records.
        TABLE: ("DescribeTable",),
        STREAM: ("DescribeStream", "GetShardIterator", "GetRecords"),
        # Leases: list (Query), a new shard's lease (PutItem), take/renew/checkpoint/release
        # (UpdateItem); lease_table_ensure's DescribeTable at start.
        LEASES: ("DescribeTable", "Query", "PutItem", "UpdateItem"),
    },
    "deploy": {
        # dynamodb_init: create or update the table (indexes, stream), TTL; the backfill of new
        # index keys (a by_day Query, the METAs' BatchGetItem for their summary state, their
        # UpdateItem; the customer directory's UpdateItem); dynamodb_backup.
        TABLE: ("CreateTable", "DescribeTable", "UpdateTable", "DescribeTimeToLive", "UpdateTimeToLive",
                "BatchGetItem", "UpdateItem", "CreateBackup"),
        INDEXES: ("Query",),
        LEASES: ("CreateTable", "DescribeTable", "UpdateTimeToLive"),
        BACKUPS: ("DeleteBackup",),
        ANY: ("ListBackups",),
    },
}

# Beat's scheduled backup (DYNAMODB_BACKUP_INTERVAL_HOURS > 0) runs on the worker.
WORKER_BACKUPS: dict[str, tuple[str, ...]] = {
    TABLE: ("CreateBackup",), BACKUPS: ("DeleteBackup",), ANY: ("ListBackups",),
}

# The table configuration of mangaassist/settings.py ("The table's configuration"), which
# dynamodb_init is to apply: granted to deploy by the setting that asks for it. DynamoDB Local has
# none of these operations, so they are listed here rather than derived from a recorded run.
DEPLOY_PITR = ("DescribeContinuousBackups", "UpdateContinuousBackups")
DEPLOY_TAGS = ("TagResource", "UntagResource", "ListTagsOfResource")
# Global tables version 2019.11.21: adding a replica is UpdateTable, which also needs these on
# the table in every region (developerguide/V2globaltables_reqs_bestpractices.html).
DEPLOY_REPLICAS = ("CreateTableReplica", "DeleteTableReplica", "DescribeTable", "UpdateTable", "Scan", "Query",
                   "GetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem")
DEPLOY_AUTOSCALING = ("application-autoscaling:RegisterScalableTarget", "application-autoscaling:DescribeScalableTargets",
                      "application-autoscaling:PutScalingPolicy", "application-autoscaling:DescribeScalingPolicies",
                      "cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms")

# The DynamoDB operations sessions_app.dynamo's RoutedConnection sends to DAX when it is on; the
# DynamoDB actions stay granted as well (the breaker's fallback goes straight to DynamoDB).
DAX_READS = ("GetItem", "BatchGetItem", "Query")
DAX_WRITES = ("PutItem", "UpdateItem", "BatchWriteItem")  # with DAX_WRITE_THROUGH (the default)
DAX: dict[str, tuple[str, ...]] = {
    "web": (*DAX_READS, *DAX_WRITES),
    # Workers read strongly consistent (straight to DynamoDB) except the sweeps' index Queries;
    # the summary transaction and the META/turn updates are written through.
    "worker": ("Query", "PutItem", "UpdateItem"),
    # The index backfill reads and updates sessions through the models, so through DAX when
    # dynamodb_init runs with DAX_ENDPOINTS set (DAX is reachable only inside the VPC).
    "deploy": ("Query", "UpdateItem"),
}

# DYNAMODB_SSE=customer: DynamoDB uses the key on the caller's behalf (kms:ViaService); reading the
# stream of such a table needs it too. dynamodb_init's CreateTable/UpdateTable also make a grant.
KMS_USE = ("kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey")
KMS_DEPLOY = (*KMS_USE, "kms:CreateGrant")
# DAX hit ratios from CloudWatch (DAX_CLUSTER_NAME): the console's overview and the alert sweep.
CLOUDWATCH_READ = ("cloudwatch:GetMetricData",)
CLOUDWATCH_ROLES = ("web", "worker")
# SUMMARIZER=bedrock: the Converse API is authorised by bedrock:InvokeModel.
BEDROCK = ("bedrock:InvokeModel",)
BEDROCK_ROLES = ("worker",)

_TRANSACT_ITEM_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                          "ConditionCheck": "ConditionCheckItem"}
# Operations IAM authorises on "*" only.
_UNSCOPED = frozenset({"ListBackups", "ListStreams", "ListTables", "DescribeLimits", "ListGlobalTables"})
_GEO_PREFIX = re.compile(r"^(us|eu|apac|global|us-gov|jp|au|ca)\.")


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


@dataclass(frozen=True)
class Deployment:
    """What the policies are about: one region's table, its lease table and the optional parts."""

    account_id: str
    region: str
    table: str
    lease_table: str
    index_names: tuple[str, ...]
    dax_cluster: str | None = None
    dax_write_through: bool = True
    kms_key: str | None = None  # DYNAMODB_KMS_KEY when DYNAMODB_SSE=customer
    sse_aws_managed: bool = False  # DYNAMODB_SSE=aws-managed: dynamodb_init tells the aws/dynamodb key from others
    dax_metrics: bool = False  # DAX_CLUSTER_NAME set: hit ratios from CloudWatch
    bedrock_model: str | None = None  # SUMMARIZER=bedrock: BEDROCK_MODEL_ID
    bedrock_region: str | None = None
    backups_scheduled: bool = False
    pitr: bool = False
    tags: bool = False
    autoscaling: bool = False
    replica_regions: tuple[str, ...] = field(default=())

    @property
    def partition(self) -> str:
        return partition_of(self.region)

    def dynamodb_arn(self, path: str, *, region: str | None = None) -> str:
        return f"arn:{self.partition}:dynamodb:{region or self.region}:{self.account_id}:{path}"

    def dax_arn(self) -> str:
        return f"arn:{self.partition}:dax:{self.region}:{self.account_id}:cache/{self.dax_cluster}"

    def resources(self, kind: str) -> list[str]:
        """The ARNs (or patterns) of one kind of resource."""
        if kind == TABLE:
            return [self.dynamodb_arn(f"table/{self.table}")]
        if kind == INDEXES:
            return [self.dynamodb_arn(f"table/{self.table}/index/{name}") for name in self.index_names]
        if kind == STREAM:
            return [self.dynamodb_arn(f"table/{self.table}/stream/*")]
        if kind == LEASES:
            return [self.dynamodb_arn(f"table/{self.lease_table}")]
        if kind == BACKUPS:
            return [self.dynamodb_arn(f"table/{self.table}/backup/*")]
        if kind == ANY:
            return ["*"]
        raise ValueError(f"unknown resource kind {kind!r}")

    def local_arn(self, arn: str) -> str:
        """An ARN as this deployment names it (DynamoDB Local answers with its own region and
        account): the ``table/…`` path kept, region and account replaced."""
        return self.dynamodb_arn(arn[arn.index(":table/") + 1:]) if ":table/" in arn else arn


def dax_cluster_name() -> str | None:
    """The DAX cluster the app talks to (DAX_ENDPOINTS set): DAX_CLUSTER_NAME, else the name in
    the cluster endpoint (``dax(s)://<cluster>.<id>.dax-clusters.<region>.amazonaws.com``).
    None when DAX is off or the endpoints name no AWS cluster (the local node)."""
    if not settings.DAX_ENDPOINTS:
        return None
    if settings.DAX_CLUSTER_NAME:
        return settings.DAX_CLUSTER_NAME
    for endpoint in settings.DAX_ENDPOINTS:
        host = urlsplit(endpoint if "://" in endpoint else f"dax://{endpoint}").hostname or ""
        if host.endswith(".amazonaws.com") and ".dax-clusters." in host:
            return host.split(".", 1)[0]  # <cluster>.<id>.dax-clusters.<region>.amazonaws.com
    return None


def deployment_from_settings(*, account_id: str, region: str | None = None, **overrides) -> Deployment:
    """The deployment the settings describe (``overrides``: any Deployment field)."""
    if not re.fullmatch(r"\d{12}", account_id or ""):
        raise ValueError("an AWS account id is 12 digits")
    schema = SessionMeta._get_schema()
    values = dict(
        account_id=account_id,
        region=region or settings.AWS_REGION,
        table=settings.DYNAMODB_TABLE,
        lease_table=lease_table_name(settings.DYNAMODB_TABLE),
        index_names=tuple(sorted(i["index_name"] for i in schema["global_secondary_indexes"])),
        dax_cluster=dax_cluster_name(),
        dax_write_through=settings.DAX_WRITE_THROUGH,
        kms_key=settings.DYNAMODB_KMS_KEY if settings.DYNAMODB_SSE == "customer" else None,
        sse_aws_managed=settings.DYNAMODB_SSE == "aws-managed",
        dax_metrics=bool(settings.DAX_CLUSTER_NAME) and not settings.DAX_STATS_URL,
        bedrock_model=settings.BEDROCK_MODEL_ID if settings.SUMMARIZER == "bedrock" else None,
        bedrock_region=settings.BEDROCK_REGION,
        backups_scheduled=settings.DYNAMODB_BACKUP_INTERVAL_HOURS > 0,
        pitr=settings.DYNAMODB_PITR,
        tags=bool(settings.DYNAMODB_TAGS),
        autoscaling=settings.DYNAMODB_BILLING_MODE == "PROVISIONED" and settings.DYNAMODB_AUTOSCALING,
        replica_regions=tuple(settings.DYNAMODB_REPLICA_REGIONS),
    )
    values.update(overrides)
    if values["table"] != settings.DYNAMODB_TABLE and "lease_table" not in overrides:
        values["lease_table"] = lease_table_name(values["table"])
    return Deployment(**values)


# --- the policy documents -----------------------------------------------------------------------

def _statement(sid: str, actions, resources, condition: dict | None = None) -> dict:
    statement = {"Sid": sid, "Effect": "Allow", "Action": sorted(set(actions)), "Resource": resources}
    if condition:
        statement["Condition"] = condition
    return statement


_SIDS = {TABLE: "SessionTable", INDEXES: "SessionTableIndexes", STREAM: "SessionTableStream",
         LEASES: "StreamLeaseTable", BACKUPS: "SessionTableBackups", ANY: "NoResourceLevelPermissions"}


def dynamodb_grants(role: str, deployment: Deployment) -> dict[str, set[str]]:
    """The DynamoDB actions (without ``dynamodb:``) of ``role``, by resource kind."""
    grants = {kind: set(actions) for kind, actions in DYNAMODB[role].items()}
    if role == "worker" and deployment.backups_scheduled:
        for kind, actions in WORKER_BACKUPS.items():
            grants.setdefault(kind, set()).update(actions)
    if role == "deploy":
        if deployment.pitr:
            grants[TABLE].update(DEPLOY_PITR)
        if deployment.tags:
            grants[TABLE].update(DEPLOY_TAGS)
    return grants


def _kms_statement(sid: str, actions, deployment: Deployment) -> dict:
    key = deployment.kms_key or ""
    region, account = deployment.region, deployment.account_id
    condition = {"StringEquals": {"kms:ViaService": f"dynamodb.{region}.amazonaws.com", "kms:CallerAccount": account}}
    if key.startswith("arn:") and ":alias/" not in key:
        resources = [key]
    elif key.startswith("arn:") or key.startswith("alias/"):
        # An alias names a key; IAM authorises the key itself: any key of the account that
        # carries this alias.
        alias = key[key.index("alias/"):]
        resources = [f"arn:{deployment.partition}:kms:{region}:{account}:key/*"]
        condition["ForAnyValue:StringEquals"] = {"kms:ResourceAliases": alias}
    else:
        resources = [f"arn:{deployment.partition}:kms:{region}:{account}:key/{key}"]
    return _statement(sid, actions, resources, condition)


def _bedrock_resources(deployment: Deployment) -> list[str]:
    model = deployment.bedrock_model or ""
    region, partition = deployment.bedrock_region or deployment.region, deployment.partition
    if model.startswith("arn:"):
        return [model]
    if _GEO_PREFIX.match(model):
        # A cross-region inference profile: the profile, and its model in whichever region
        # the profile routes the call to.
        base = _GEO_PREFIX.sub("", model)
        return [f"arn:{partition}:bedrock:{region}:{deployment.account_id}:inference-profile/{model}",
                f"arn:{partition}:bedrock:*::foundation-model/{base}"]
    return [f"arn:{partition}:bedrock:{region}::foundation-model/{model}"]


def policy_document(role: str, deployment: Deployment) -> dict:
    """One role's policy (IAM policy grammar, version 2012-10-17)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    statements = []
    for kind, actions in sorted(dynamodb_grants(role, deployment).items(), key=lambda kv: KINDS.index(kv[0])):
        if actions:
            resources = deployment.resources(kind)
            statements.append(_statement(_SIDS[kind], [f"dynamodb:{a}" for a in actions],
                                         resources if kind != ANY else "*"))
    if role == "deploy" and deployment.replica_regions:
        regions = (deployment.region, *[r for r in deployment.replica_regions if r != deployment.region])
        statements.append(_statement("GlobalTableReplicas", [f"dynamodb:{a}" for a in DEPLOY_REPLICAS],
                                     [deployment.dynamodb_arn(f"table/{deployment.table}", region=r) for r in regions]))
        statements.append(_statement("GlobalTableReplicationRole", ["iam:CreateServiceLinkedRole"], "*",
                                     {"StringEquals": {"iam:AWSServiceName": "replication.dynamodb.amazonaws.com"}}))
    if role == "deploy" and deployment.autoscaling:
        statements.append(_statement("TableAutoScaling", DEPLOY_AUTOSCALING, "*"))
        statements.append(_statement(
            "TableAutoScalingRole", ["iam:CreateServiceLinkedRole"], "*",
            {"StringEquals": {"iam:AWSServiceName": "dynamodb.application-autoscaling.amazonaws.com"}}))
    if role in DAX and deployment.dax_cluster:
        actions = DAX_READS + (DAX_WRITES if deployment.dax_write_through else ())
        actions = [a for a in actions if a in DAX[role]]
        statements.append(_statement("DaxCluster", [f"dax:{a}" for a in actions], [deployment.dax_arn()]))
    if role == "deploy" and deployment.sse_aws_managed:
        # dynamodb_init's plan asks KMS whether the table's key is the AWS-managed aws/dynamodb
        # (services.table_config); its key id is the account's own, so it is named by its alias.
        statements.append(_statement(
            "ManagedTableKey", ["kms:DescribeKey"], "*",
            {"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/aws/dynamodb"}}))
    if deployment.kms_key:
        statements.append(_kms_statement("TableKey", KMS_DEPLOY if role == "deploy" else KMS_USE, deployment))
    if (deployment.dax_metrics and role in CLOUDWATCH_ROLES) or role == "web":
        # web: the infrastructure page's consumed capacity (AWS/DynamoDB) always, and the DAX
        # hit ratios with DAX_CLUSTER_NAME. GetMetricData is granted on "*" only.
        statements.append(_statement("DaxHitRatios" if role != "web" else "CloudWatchMetrics", CLOUDWATCH_READ, "*"))
    if deployment.bedrock_model and role in BEDROCK_ROLES:
        statements.append(_statement("Summarizer", BEDROCK, _bedrock_resources(deployment)))
    return {"Version": "2012-10-17", "Statement": statements}


def policy_documents(account_id: str, region: str | None = None, *, roles=ROLES, **overrides) -> dict[str, dict]:
    """``{role: policy document}`` for the deployment the settings describe, in ``region``
    (default ``AWS_REGION``); ``overrides``: any :class:`Deployment` field."""
    deployment = deployment_from_settings(account_id=account_id, region=region, **overrides)
    return {role: policy_document(role, deployment) for role in roles}


def policy_json(document: dict) -> str:
    return json.dumps(document, indent=2)


# --- from an API call to the permissions it needs -----------------------------------------------
# The derivation test's half of the contract: what IAM checks for one DynamoDB or Streams call.

def _tables_of(params: dict) -> list[str]:
    if "RequestItems" in params:
        return list(params["RequestItems"])
    if "TransactItems" in params:
        return [next(iter(item.values()))["TableName"] for item in params["TransactItems"]]
    return [params["TableName"]] if "TableName" in params else []


def permissions_for_call(service: str, operation: str, params: dict, *, deployment: Deployment,
                         stream_arn: str | None = None) -> list[tuple[str, str]]:
    """The ``(action, resource ARN)`` pairs IAM checks for one call. ``service``: ``dynamodb``
    or ``dynamodbstreams``; ``stream_arn``: the stream a GetRecords reads (its iterator is opaque)."""
    if operation in _UNSCOPED:
        return [(f"dynamodb:{operation}", "*")]
    table_arn = lambda name: deployment.dynamodb_arn(f"table/{name}")  # noqa: E731
    if service == "dynamodbstreams":
        arn = params.get("StreamArn") or stream_arn
        if arn is None:
            raise ValueError(f"{operation}: which stream?")
        return [(f"dynamodb:{operation}", deployment.local_arn(arn))]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        pairs = []
        for item in params["TransactItems"]:
            (kind, request), = item.items()
            action = "GetItem" if kind == "Get" else _TRANSACT_ITEM_ACTIONS[kind]
            pairs.append((f"dynamodb:{action}", table_arn(request["TableName"])))
        return pairs
    if operation in ("DeleteBackup", "DescribeBackup", "RestoreTableFromBackup"):
        return [(f"dynamodb:{operation}", deployment.local_arn(params["BackupArn"]))]
    if operation in ("Query", "Scan") and params.get("IndexName"):
        return [(f"dynamodb:{operation}", table_arn(f"{params['TableName']}/index/{params['IndexName']}"))]
    if "ResourceArn" in params:
        return [(f"dynamodb:{operation}", deployment.local_arn(params["ResourceArn"]))]
    tables = _tables_of(params)
    if not tables:
        raise ValueError(f"{operation}: no table in the request")
    return [(f"dynamodb:{operation}", table_arn(t)) for t in tables]


def dax_permissions_for_call(operation: str, params: dict, *, deployment: Deployment) -> list[tuple[str, str]]:
    """The ``dax:`` permissions the same call needs when DAX is on: what ``RoutedConnection``
    sends to the cluster (data operations on the session table; reads unless strongly
    consistent; writes with DAX_WRITE_THROUGH), each as DAX's action of the same name
    (transactions: per item, as on DynamoDB)."""
    if not deployment.dax_cluster or set(_tables_of(params)) != {deployment.table}:
        return []
    if operation not in dynamo.DATA_READS | dynamo.DATA_WRITES:
        return []
    if operation in dynamo.DATA_READS and (params.get("ConsistentRead") or any(
            spec.get("ConsistentRead") for spec in params.get("RequestItems", {}).values())):
        return []
    if operation in dynamo.DATA_WRITES and not deployment.dax_write_through:
        return []
    cluster = deployment.dax_arn()
    if operation == "TransactWriteItems":
        kinds = {next(iter(item)) for item in params["TransactItems"]}
        return sorted((f"dax:{_TRANSACT_ITEM_ACTIONS[kind]}", cluster) for kind in kinds)
    return [(f"dax:{operation}", cluster)]
