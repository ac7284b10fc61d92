"""The table's configuration (sessions_app.services.table_config): plans, and applying them.

Against DynamoDB Local for everything it has: the default settings' empty plan, provisioned
capacity per table and per index, switching capacity modes (and the 24-hour limit, which DynamoDB
Local's BillingModeSummary lets us reach for real), deletion protection — and what it lacks fails
with the setting's name, not a traceback.

Through botocore's Stubber on the real clients (the table connection's DynamoDB client, the
Application Auto Scaling and KMS clients) for what DynamoDB Local lacks: PITR, encryption, table
classes, tags, auto scaling, replicas. Every request is also validated against the service's
input shape (the connection's client has botocore's validation off, for speed), and every stubbed
answer against the output shape (the Stubber does that). The answers come from a small model of a
table (``Table`` below) that each applied call changes as DynamoDB would: "a plan after applying
the plan is empty" is checked by planning again from the model's new state.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from botocore.validate import validate_parameters

from sessions_app import dynamo
from sessions_app.services import table_config as tc
from sessions_app.services.table import table_delete, table_ensure, table_ensure_plan
from sessions_app.services.table_config import (
    AUTOSCALING,
    DYNAMODB,
    Autoscaling,
    Capacity,
    DesiredConfig,
    PlannedCall,
    TableConfigError,
    plan_apply,
    table_plan,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
ACCOUNT, REGION = "123456789012", "us-east-1"
AWS_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/0a0a0a0a-aws-managed-dynamodb"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
CUSTOMER_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{KEY_ID}"
OTHER_KEY = f"arn:aws:kms:{REGION}:{ACCOUNT}:key/ffffffff-0000-0000-0000-000000000000"
# What KMS knows: key ids, ARNs and aliases → the key's ARN; each key's manager.
KEYS = {"alias/aws/dynamodb": AWS_KEY, "alias/mangaassist": CUSTOMER_KEY, KEY_ID: CUSTOMER_KEY,
        CUSTOMER_KEY: CUSTOMER_KEY, OTHER_KEY: OTHER_KEY, AWS_KEY: AWS_KEY}
MANAGER = {AWS_KEY: "AWS", CUSTOMER_KEY: "CUSTOMER", OTHER_KEY: "CUSTOMER"}
SCHEMA = tc.desired_schema()
INDEXES = [i["IndexName"] for i in SCHEMA["GlobalSecondaryIndexes"]]
READS = ("Describe", "List")


def _writes(sent):
    return [(service, op, params) for service, op, params in sent if not op.startswith(READS)]


def _expected(plan):
    return [(c.service, c.operation, c.params) for c in plan.calls]


# --- on DynamoDB Local --------------------------------------------------------------------------

@contextmanager
def _recorded(*clients):
    """Every request the clients send, as (service, operation, params), validated against the
    operation's input shape."""
    sent: list[tuple[str, str, dict]] = []

    def record(params, model, **kwargs):
        validate_parameters(params, model.input_shape)
        sent.append((model.service_model.service_name, model.name, copy.deepcopy(params)))

    for client in clients:
        client.meta.events.register("before-parameter-build", record, unique_id="test-table-config")
    try:
        yield sent
    finally:
        for client in clients:
            client.meta.events.unregister("before-parameter-build", unique_id="test-table-config")


def _describe(name):
    return dynamo.connection().client.describe_table(TableName=name)["Table"]


def test_the_default_settings_plan_nothing_on_dynamodb_local_and_a_second_run_changes_nothing(ddb):
    plan = table_ensure_plan(table_name=ddb)
    assert plan.calls == [] and plan.blocked == []
    with _recorded(dynamo.connection().client) as sent:
        report = table_ensure(table_name=ddb)
    assert not report.changed and report.applied == [] and report.stream_arn
    # Nothing but reads, and only the ones DynamoDB Local has (no PITR, tag or backup reads).
    assert {op for _, op, _ in sent} == {"DescribeTable", "DescribeTimeToLive"}


def test_provisioned_capacity_per_table_and_index_is_created_then_changed_by_exactly_the_planned_call(
        infra, table_name, settings):
    settings.DYNAMODB_TABLE = table_name
    settings.DYNAMODB_BILLING_MODE, settings.DYNAMODB_READ_CAPACITY, settings.DYNAMODB_WRITE_CAPACITY = "PROVISIONED", 3, 2
    settings.DYNAMODB_INDEX_CAPACITY = ["by_day=4:1"]
    dynamo.reset_connections()
    try:
        plan = table_ensure_plan(table_name=table_name)
        create = plan.calls[0]
        assert create.operation == "CreateTable" and create.params["BillingMode"] == "PROVISIONED"
        assert create.params["ProvisionedThroughput"] == {"ReadCapacityUnits": 3, "WriteCapacityUnits": 2}
        table_ensure(table_name=table_name, plan=plan)
        table = _describe(table_name)
        # Created provisioned, a table has no BillingModeSummary (on AWS too): absent means PROVISIONED.
        assert table.get("BillingModeSummary", {}).get("BillingMode", "PROVISIONED") == "PROVISIONED"
        assert (table["ProvisionedThroughput"]["ReadCapacityUnits"], table["ProvisionedThroughput"]["WriteCapacityUnits"]) == (3, 2)
        units = {i["IndexName"]: (i["ProvisionedThroughput"]["ReadCapacityUnits"], i["ProvisionedThroughput"]["WriteCapacityUnits"])
                 for i in table["GlobalSecondaryIndexes"]}
        assert units == {name: (4, 1) if name == "by_day" else (3, 2) for name in INDEXES}
        assert table_ensure_plan(table_name=table_name).calls == []

        settings.DYNAMODB_INDEX_CAPACITY = ["by_day=6:1"]
        plan = table_ensure_plan(table_name=table_name)
        assert [c.line() for c in plan.calls] == [
            "UpdateTable GlobalSecondaryIndexUpdates=[Update IndexName=by_day ReadCapacityUnits=6 WriteCapacityUnits=1]"
            " — DYNAMODB_READ_CAPACITY=3 DYNAMODB_WRITE_CAPACITY=2 DYNAMODB_INDEX_CAPACITY=by_day=6:1"]
        with _recorded(dynamo.connection().client) as sent:
            report = table_ensure(table_name=table_name, plan=plan)
        assert _writes(sent) == _expected(plan) and report.configured == ["DYNAMODB_READ_CAPACITY"]
        assert {i["IndexName"]: i["ProvisionedThroughput"]["ReadCapacityUnits"]
                for i in _describe(table_name)["GlobalSecondaryIndexes"]}["by_day"] == 6
        assert table_ensure_plan(table_name=table_name).calls == []
        assert not table_ensure(table_name=table_name).changed
    finally:
        table_delete(table_name=table_name)


def test_switching_to_provisioned_and_back_respects_the_24_hour_limit(ddb, settings):
    settings.DYNAMODB_BILLING_MODE = "PROVISIONED"
    plan = table_ensure_plan(table_name=ddb)
    (switch,) = plan.calls
    assert switch.params["BillingMode"] == "PROVISIONED"
    # DynamoDB wants every index's capacity in the call that switches.
    assert [u["Update"]["IndexName"] for u in switch.params["GlobalSecondaryIndexUpdates"]] == \
        [i["IndexName"] for i in _describe(ddb)["GlobalSecondaryIndexes"]]
    with _recorded(dynamo.connection().client) as sent:
        table_ensure(table_name=ddb, plan=plan)
    assert _writes(sent) == _expected(plan)
    assert table_ensure_plan(table_name=ddb).calls == []

    # Back to on demand: DynamoDB Local, like AWS, dates the last switch to on demand (here: the
    # table's creation, minutes ago).
    settings.DYNAMODB_BILLING_MODE = "PAY_PER_REQUEST"
    plan = table_ensure_plan(table_name=ddb)
    assert plan.calls == []
    (blocked,) = plan.blocked
    assert blocked.setting == "DYNAMODB_BILLING_MODE" and "within 24 hours" in blocked.message
    assert "run dynamodb_init again after" in blocked.message
    last = _describe(ddb)["BillingModeSummary"]["LastUpdateToPayPerRequestDateTime"]
    client = dynamo.connection().client
    later = table_plan(client, ddb, tc.desired_config(), now=last + timedelta(hours=24, minutes=1))
    assert [c.line() for c in later.calls] == ["UpdateTable BillingMode=PAY_PER_REQUEST — DYNAMODB_BILLING_MODE=PAY_PER_REQUEST"]
    plan_apply(later, {DYNAMODB: client})
    assert _describe(ddb)["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_deletion_protection_is_applied_on_dynamodb_local_and_table_delete_lifts_it(ddb, settings):
    settings.DYNAMODB_DELETION_PROTECTION = True
    plan = table_ensure_plan(table_name=ddb)
    assert [c.line() for c in plan.calls] == ["UpdateTable DeletionProtectionEnabled=true — DYNAMODB_DELETION_PROTECTION=1"]
    table_ensure(table_name=ddb, plan=plan)
    assert _describe(ddb)["DeletionProtectionEnabled"] is True
    assert table_ensure_plan(table_name=ddb).calls == []
    with pytest.raises(ClientError, match="protected against deletion"):
        dynamo.connection().client.delete_table(TableName=ddb)
    table_delete(table_name=ddb)  # tests and local resets: unprotects first
    with pytest.raises(ClientError, match="ResourceNotFound|not found"):
        _describe(ddb)


def test_a_new_table_gets_deletion_protection_in_create_table(infra, table_name, settings):
    settings.DYNAMODB_TABLE, settings.DYNAMODB_DELETION_PROTECTION = table_name, True
    dynamo.reset_connections()
    try:
        plan = table_ensure_plan(table_name=table_name)
        assert plan.calls[0].params["DeletionProtectionEnabled"] is True
        assert [c.operation for c in plan.calls] == ["CreateTable", "UpdateTimeToLive", "CreateTable"]  # the last: leases
        report = table_ensure(table_name=table_name, plan=plan)
        assert report.created and report.ttl_enabled and report.stream_enabled and report.lease_table_created
        assert _describe(table_name)["DeletionProtectionEnabled"] is True
        assert table_ensure_plan(table_name=table_name).calls == []
    finally:
        table_delete(table_name=table_name)


def test_a_create_table_whose_answer_was_lost_is_not_refused_by_its_own_resend(infra, table_name, settings):
    """botocore resends a CreateTable whose answer timed out; the resend finds the table the
    first request made. That table is ours (same keys and indexes): the run goes on. One with
    other indexes is somebody else's: refused, as before."""
    settings.DYNAMODB_TABLE = table_name
    dynamo.reset_connections()
    try:
        plan = table_ensure_plan(table_name=table_name)
        create = plan.calls[0]
        client = dynamo.connection().client
        client.create_table(**create.params)  # the first request, whose answer was lost
        assert tc._send(client, create, lambda seconds: None) == {}
        other = replace(create, params={**create.params, "GlobalSecondaryIndexes": create.params["GlobalSecondaryIndexes"][:1]})
        with pytest.raises(ClientError):
            tc._send(client, other, lambda seconds: None)
    finally:
        table_delete(table_name=table_name)


@pytest.mark.parametrize("setting, value, operation", [
    ("DYNAMODB_PITR", True, "UpdateContinuousBackups"),
    ("DYNAMODB_TAGS", ["team=support"], "TagResource"),
    ("DYNAMODB_SSE", "aws-managed", "UpdateTable"),
    ("DYNAMODB_TABLE_CLASS", "STANDARD_INFREQUENT_ACCESS", "UpdateTable"),
    ("DYNAMODB_REPLICA_REGIONS", ["eu-west-1"], "UpdateTable"),
])
def test_what_dynamodb_local_lacks_fails_naming_the_setting(ddb, settings, setting, value, operation):
    setattr(settings, setting, value)
    plan = table_ensure_plan(table_name=ddb)
    (call,) = plan.calls
    assert call.setting == setting and call.operation == operation
    with pytest.raises(TableConfigError) as caught:
        table_ensure(table_name=ddb, plan=plan)
    message = str(caught.value)
    assert message.startswith(f"{setting}: {operation}") and "was refused" in message
    assert "DynamoDB Local has no" in message and f"leave {setting} at its default locally" in message


def test_auto_scaling_has_no_endpoint_beside_dynamodb_local(ddb, settings):
    settings.DYNAMODB_BILLING_MODE, settings.DYNAMODB_AUTOSCALING = "PROVISIONED", True
    plan = table_ensure_plan(table_name=ddb)
    # The switch (DynamoDB Local has it), then every target and policy: none can be read here.
    assert plan.calls[0].params["BillingMode"] == "PROVISIONED"
    assert {c.operation for c in plan.calls[1:]} == {"RegisterScalableTarget", "PutScalingPolicy"}
    assert len(plan.calls[1:]) == 2 * 2 * (1 + len(INDEXES))
    with pytest.raises(TableConfigError, match=r"^DYNAMODB_AUTOSCALING: RegisterScalableTarget needs application-autoscaling,"
                                               r" which has no endpoint here .*DynamoDB Local.*1 call\(s\) before it were applied"):
        table_ensure(table_name=ddb, plan=plan)
    assert _describe(ddb)["BillingModeSummary"]["BillingMode"] == "PROVISIONED"


# --- through the Stubber: a model of a table ------------------------------------------------------

@dataclass
class Table:
    """A table as DynamoDB (and Application Auto Scaling, and KMS) would describe it."""

    name: str
    exists: bool = True
    billing: str = "PAY_PER_REQUEST"
    last_on_demand: datetime | None = NOW - timedelta(days=30)
    capacity: tuple[int, int] = (0, 0)
    indexes: dict[str, tuple[int, int]] = field(default_factory=lambda: {i: (0, 0) for i in INDEXES})
    stream: str | None = "NEW_AND_OLD_IMAGES"
    key: str | None = None  # the KMS key's ARN; None: AWS owned
    table_class: str = "STANDARD"
    deletion_protection: bool = False
    ttl: bool = True
    pitr: bool = False
    tags: dict[str, str] = field(default_factory=dict)
    replicas: dict[str, str] = field(default_factory=dict)  # region → status
    targets: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    policies: dict[tuple[str, str], tuple[str, str, float]] = field(default_factory=dict)  # → name, metric, target

    @property
    def arn(self) -> str:
        return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{self.name}"

    def description(self) -> dict:
        keys = {i["IndexName"]: i for i in SCHEMA["GlobalSecondaryIndexes"]}
        table = {
            "TableName": self.name, "TableArn": self.arn, "TableStatus": "ACTIVE", "CreationDateTime": NOW - timedelta(days=90),
            "KeySchema": SCHEMA["KeySchema"], "AttributeDefinitions": SCHEMA["AttributeDefinitions"],
            "ProvisionedThroughput": {"ReadCapacityUnits": self.capacity[0], "WriteCapacityUnits": self.capacity[1]},
            "BillingModeSummary": {"BillingMode": self.billing},
            "GlobalSecondaryIndexes": [
                {"IndexName": name, "KeySchema": keys[name]["KeySchema"], "Projection": keys[name]["Projection"],
                 "IndexStatus": "ACTIVE", "IndexArn": f"{self.arn}/index/{name}",
                 "ProvisionedThroughput": {"ReadCapacityUnits": r, "WriteCapacityUnits": w}}
                for name, (r, w) in self.indexes.items()],
            "DeletionProtectionEnabled": self.deletion_protection,
        }
        if self.last_on_demand:
            table["BillingModeSummary"]["LastUpdateToPayPerRequestDateTime"] = self.last_on_demand
        if self.stream:
            table["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": self.stream}
            table["LatestStreamArn"] = f"{self.arn}/stream/2026-01-01T00:00:00.000"
        if self.key:
            table["SSEDescription"] = {"Status": "ENABLED", "SSEType": "KMS", "KMSMasterKeyArn": self.key}
        if self.table_class != "STANDARD":
            table["TableClassSummary"] = {"TableClass": self.table_class}
        if self.replicas:
            table["GlobalTableVersion"] = "2019.11.21"
            table["Replicas"] = [{"RegionName": r, "ReplicaStatus": s} for r, s in self.replicas.items()]
        return table

    def apply(self, operation: str, params: dict) -> dict:
        """Change as DynamoDB would for the call; the call's answer."""
        if operation in ("CreateTable", "UpdateTable"):
            if operation == "CreateTable":
                self.exists, self.ttl, self.pitr, self.stream, self.indexes = True, False, False, None, {}
                self.tags = {t["Key"]: t["Value"] for t in params.get("Tags", [])}
                self.deletion_protection = params.get("DeletionProtectionEnabled", False)
                for index in params.get("GlobalSecondaryIndexes", []):
                    self.indexes[index["IndexName"]] = _pair(index.get("ProvisionedThroughput"))
                self.last_on_demand = NOW if params["BillingMode"] == "PAY_PER_REQUEST" else None
            if "BillingMode" in params:
                if params["BillingMode"] == "PAY_PER_REQUEST":
                    self.capacity, self.indexes = (0, 0), {i: (0, 0) for i in self.indexes}
                    if self.billing == "PROVISIONED":
                        self.last_on_demand = NOW
                self.billing = params["BillingMode"]
            if "ProvisionedThroughput" in params:
                self.capacity = _pair(params["ProvisionedThroughput"])
            for update in params.get("GlobalSecondaryIndexUpdates", []):
                action, = update.values()
                self.indexes[action["IndexName"]] = _pair(action.get("ProvisionedThroughput"))
            if "StreamSpecification" in params:
                spec = params["StreamSpecification"]
                self.stream = spec["StreamViewType"] if spec["StreamEnabled"] else None
            if "SSESpecification" in params:
                spec = params["SSESpecification"]
                self.key = KEYS[spec.get("KMSMasterKeyId", "alias/aws/dynamodb")] if spec["Enabled"] else None
            self.table_class = params.get("TableClass", self.table_class)
            self.deletion_protection = params.get("DeletionProtectionEnabled", self.deletion_protection)
            for update in params.get("ReplicaUpdates", []):
                self.replicas[update["Create"]["RegionName"]] = "ACTIVE"
            return {"TableDescription": self.description()}
        if operation == "UpdateTimeToLive":
            self.ttl = params["TimeToLiveSpecification"]["Enabled"]
            return {"TimeToLiveSpecification": params["TimeToLiveSpecification"]}
        if operation == "UpdateContinuousBackups":
            self.pitr = params["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]
            return {"ContinuousBackupsDescription": self._backups()}
        if operation == "TagResource":
            self.tags.update({t["Key"]: t["Value"] for t in params["Tags"]})
            return {}
        if operation == "UntagResource":
            for key in params["TagKeys"]:
                self.tags.pop(key)
            return {}
        if operation == "RegisterScalableTarget":
            self.targets[(params["ResourceId"], params["ScalableDimension"])] = (params["MinCapacity"], params["MaxCapacity"])
            return {"ScalableTargetARN": f"arn:aws:application-autoscaling:{REGION}:{ACCOUNT}:scalable-target/x{len(self.targets)}"}
        if operation == "PutScalingPolicy":
            config = params["TargetTrackingScalingPolicyConfiguration"]
            self.policies[(params["ResourceId"], params["ScalableDimension"])] = (
                params["PolicyName"], config["PredefinedMetricSpecification"]["PredefinedMetricType"], config["TargetValue"])
            return {"PolicyARN": f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:x:resource/dynamodb/{params['PolicyName']}",
                    "Alarms": []}
        raise AssertionError(f"the model has no {operation}")

    def _backups(self) -> dict:
        return {"ContinuousBackupsStatus": "ENABLED",
                "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "ENABLED" if self.pitr else "DISABLED"}}

    def scalable_targets(self, resources: list[str]) -> dict:
        return {"ScalableTargets": [
            {"ServiceNamespace": "dynamodb", "ResourceId": rid, "ScalableDimension": dim, "MinCapacity": lo, "MaxCapacity": hi,
             "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/aws-service-role/dynamodb.application-autoscaling.amazonaws.com/x",
             "CreationTime": NOW} for (rid, dim), (lo, hi) in self.targets.items() if rid in resources]}

    def scaling_policies(self, resource: str) -> dict:
        return {"ScalingPolicies": [
            {"PolicyARN": f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:x:resource/dynamodb/{name}", "PolicyName": name,
             "ServiceNamespace": "dynamodb", "ResourceId": rid, "ScalableDimension": dim, "PolicyType": "TargetTrackingScaling",
             "TargetTrackingScalingPolicyConfiguration": {"TargetValue": target,
                                                          "PredefinedMetricSpecification": {"PredefinedMetricType": metric}},
             "CreationTime": NOW} for (rid, dim), (name, metric, target) in self.policies.items() if rid == resource]}


def _pair(throughput: dict | None) -> tuple[int, int]:
    return (throughput["ReadCapacityUnits"], throughput["WriteCapacityUnits"]) if throughput else (0, 0)


class Aws:
    """The real clients under Stubbers, answering from a Table model."""

    def __init__(self, model: Table):
        self.model = model
        self.clients = {DYNAMODB: dynamo.connection().client, AUTOSCALING: dynamo.autoscaling_client(),
                        "kms": tc._kms_client()}
        self.stubs = {service: Stubber(client) for service, client in self.clients.items()}

    def reads(self, desired: DesiredConfig) -> None:
        """Queue the answers to the reads read_state makes for ``desired``, in its order."""
        m, ddb = self.model, self.stubs[DYNAMODB]
        if not m.exists:
            ddb.add_client_error("describe_table", "ResourceNotFoundException", expected_params={"TableName": m.name})
            return
        ddb.add_response("describe_table", {"Table": m.description()}, {"TableName": m.name})
        ttl = {"TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"} if m.ttl else {"TimeToLiveStatus": "DISABLED"}
        ddb.add_response("describe_time_to_live", {"TimeToLiveDescription": ttl}, {"TableName": m.name})
        if desired.pitr:
            ddb.add_response("describe_continuous_backups", {"ContinuousBackupsDescription": m._backups()}, {"TableName": m.name})
        if desired.tags:
            ddb.add_response("list_tags_of_resource", {"Tags": [{"Key": k, "Value": v} for k, v in m.tags.items()]},
                             {"ResourceArn": m.arn})
        if m.key and desired.sse == "aws-managed":
            self.stubs["kms"].add_response("describe_key", {"KeyMetadata": {"KeyId": m.key, "Arn": m.key,
                                                                            "KeyManager": MANAGER[m.key]}}, {"KeyId": m.key})
        elif m.key and desired.sse == "customer" and desired.kms_key.startswith("alias/"):
            arn = KEYS[desired.kms_key]
            self.stubs["kms"].add_response("describe_key", {"KeyMetadata": {"KeyId": arn, "Arn": arn, "KeyManager": MANAGER[arn]}},
                                           {"KeyId": desired.kms_key})
        if desired.scaled:
            names = sorted(set(INDEXES) | set(m.indexes))
            resources = [f"table/{m.name}"] + [f"table/{m.name}/index/{i}" for i in names]
            aas = self.stubs[AUTOSCALING]
            aas.add_response("describe_scalable_targets", m.scalable_targets(resources),
                             {"ServiceNamespace": "dynamodb", "ResourceIds": resources})
            for resource in sorted({rid for rid, _ in m.targets if rid in resources}):
                aas.add_response("describe_scaling_policies", m.scaling_policies(resource),
                                 {"ServiceNamespace": "dynamodb", "ResourceId": resource})

    def plan(self, desired: DesiredConfig, **kwargs):
        self.reads(desired)
        with self.active() as sent:
            plan = table_plan(self.clients[DYNAMODB], self.model.name, desired, autoscaling_client=self.clients[AUTOSCALING],
                              kms_client=self.clients["kms"], now=kwargs.pop("now", NOW), **kwargs)
        assert not _writes(sent), "planning only reads"
        return plan

    def apply(self, plan, **kwargs):
        """Queue each planned call's answer (the model changed by it), apply the plan; what was
        sent, in order, the waits for ACTIVE included as ("wait",)."""
        for call in plan.calls:
            stub = self.stubs[call.service]
            stub.add_response(xform(call.operation), self.model.apply(call.operation, call.params), call.params)
        with self.active() as sent:
            applied = plan_apply(plan, {DYNAMODB: self.clients[DYNAMODB], AUTOSCALING: self.clients[AUTOSCALING]},
                                 wait=lambda: sent.append(("wait",)), **kwargs)
        assert applied == plan.calls
        return sent

    @contextmanager
    def active(self):
        for stub in self.stubs.values():
            stub.activate()
        try:
            with _recorded(*self.clients.values()) as sent:
                yield sent
            for stub in self.stubs.values():
                stub.assert_no_pending_responses()
        finally:
            for stub in self.stubs.values():
                stub.deactivate()


def xform(operation: str) -> str:
    from botocore import xform_name

    return xform_name(operation)


@pytest.fixture
def aws(infra, settings):
    settings.DAX_ENDPOINTS = []
    dynamo.reset_connections()

    def make(**table) -> Aws:
        table = copy.deepcopy(table)  # the model changes its dicts: never the parametrize's own
        return Aws(Table(name=table.pop("name", "sessions"), **table))

    yield make
    dynamo.reset_connections()


def _only(plan) -> PlannedCall:
    (call,) = plan.calls
    return call


def test_pitr_on_is_one_update_continuous_backups(aws):
    world = aws()
    plan = world.plan(DesiredConfig(pitr=True))
    call = _only(plan)
    assert (call.service, call.operation, call.params) == (DYNAMODB, "UpdateContinuousBackups", {
        "TableName": "sessions", "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True}})
    assert call.line() == "UpdateContinuousBackups PointInTimeRecoveryEnabled=true — DYNAMODB_PITR=1"
    assert _writes(world.apply(plan)) == _expected(plan)
    assert world.plan(DesiredConfig(pitr=True)).calls == []


def test_pitr_off_is_neither_read_nor_reverted(aws):
    world = aws(pitr=True)
    plan = world.plan(DesiredConfig(pitr=False))  # no DescribeContinuousBackups queued: none made
    assert plan.calls == []


def test_a_new_table_gets_pitr_once_dynamodb_takes_it(aws):
    world = aws(exists=False)
    plan = world.plan(DesiredConfig(pitr=True))
    assert [c.operation for c in plan.calls] == ["CreateTable", "UpdateTimeToLive", "UpdateContinuousBackups"]
    stub = world.stubs[DYNAMODB]
    for call in plan.calls[:2]:
        stub.add_response(xform(call.operation), world.model.apply(call.operation, call.params), call.params)
    pitr = plan.calls[2]
    stub.add_client_error("update_continuous_backups", "ContinuousBackupsUnavailableException",
                          "Backups are being enabled for the table", expected_params=pitr.params)
    stub.add_response("update_continuous_backups", world.model.apply(pitr.operation, pitr.params), pitr.params)
    slept = []
    with world.active() as sent:
        plan_apply(plan, {DYNAMODB: world.clients[DYNAMODB]}, wait=lambda: sent.append(("wait",)), sleep=slept.append)
    assert slept == [5] and [s[1] for s in sent if s != ("wait",)] == [
        "CreateTable", "UpdateTimeToLive", "UpdateContinuousBackups", "UpdateContinuousBackups"]


@pytest.mark.parametrize("current, desired, spec", [
    (None, DesiredConfig(sse="aws-managed"), {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": "alias/aws/dynamodb"}),
    (None, DesiredConfig(sse="customer", kms_key=CUSTOMER_KEY), {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": CUSTOMER_KEY}),
    # Another customer key in place: DynamoDB re-encrypts with the new one in place.
    (OTHER_KEY, DesiredConfig(sse="customer", kms_key="alias/mangaassist"),
     {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": "alias/mangaassist"}),
    (CUSTOMER_KEY, DesiredConfig(sse="aws-managed"), {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": "alias/aws/dynamodb"}),
    (AWS_KEY, DesiredConfig(sse="aws-owned"), {"Enabled": False}),
])
def test_encryption_changes_are_one_update_table_each(aws, current, desired, spec):
    world = aws(key=current)
    plan = world.plan(desired)
    call = _only(plan)
    assert (call.operation, call.params, call.setting) == ("UpdateTable", {"TableName": "sessions", "SSESpecification": spec},
                                                           "DYNAMODB_SSE")
    world.apply(plan)
    assert world.model.key == (KEYS[spec["KMSMasterKeyId"]] if spec["Enabled"] else None)
    assert world.plan(desired).calls == []


@pytest.mark.parametrize("current, desired", [
    (AWS_KEY, DesiredConfig(sse="aws-managed")),
    (CUSTOMER_KEY, DesiredConfig(sse="customer", kms_key=CUSTOMER_KEY)),
    (CUSTOMER_KEY, DesiredConfig(sse="customer", kms_key=KEY_ID)),
    (CUSTOMER_KEY, DesiredConfig(sse="customer", kms_key="alias/mangaassist")),
])
def test_the_key_in_place_under_another_name_is_no_change(aws, current, desired):
    assert aws(key=current).plan(desired).calls == []


def test_a_key_kms_will_not_describe_is_left_as_it_is_and_said(aws):
    world = aws(key=CUSTOMER_KEY)
    world.stubs["kms"].add_client_error("describe_key", "AccessDeniedException", expected_params={"KeyId": CUSTOMER_KEY})
    world.stubs[DYNAMODB].add_response("describe_table", {"Table": world.model.description()}, {"TableName": "sessions"})
    world.stubs[DYNAMODB].add_response("describe_time_to_live", {"TimeToLiveDescription": {
        "TimeToLiveStatus": "ENABLED", "AttributeName": "ttl"}}, {"TableName": "sessions"})
    with world.active():
        plan = table_plan(world.clients[DYNAMODB], "sessions", DesiredConfig(sse="aws-managed"), kms_client=world.clients["kms"],
                          now=NOW)
    assert plan.calls == []
    (blocked,) = plan.blocked
    assert blocked.setting == "DYNAMODB_SSE" and "AccessDeniedException" in blocked.message and CUSTOMER_KEY in blocked.message


def test_table_class_and_deletion_protection_are_a_call_each(aws):
    world = aws()
    desired = DesiredConfig(table_class="STANDARD_INFREQUENT_ACCESS", deletion_protection=True)
    plan = world.plan(desired)
    assert [c.line() for c in plan.calls] == [
        "UpdateTable TableClass=STANDARD_INFREQUENT_ACCESS — DYNAMODB_TABLE_CLASS=STANDARD_INFREQUENT_ACCESS",
        "UpdateTable DeletionProtectionEnabled=true — DYNAMODB_DELETION_PROTECTION=1"]
    sent = world.apply(plan)
    # One concern per UpdateTable, and the table ACTIVE again before the next one and at the end.
    assert [s[1] if s != ("wait",) else "wait" for s in sent] == ["UpdateTable", "wait", "UpdateTable", "wait"]
    assert world.plan(desired).calls == []


def test_tags_are_exactly_the_settings_except_aws_own(aws):
    world = aws(tags={"team": "old", "stale": "x", "aws:cloudformation:stack-name": "s"})
    desired = DesiredConfig(tags={"team": "support", "cost": "cx"})
    plan = world.plan(desired)
    assert _expected(plan) == [
        (DYNAMODB, "TagResource", {"ResourceArn": world.model.arn, "Tags": [{"Key": "team", "Value": "support"},
                                                                           {"Key": "cost", "Value": "cx"}]}),
        (DYNAMODB, "UntagResource", {"ResourceArn": world.model.arn, "TagKeys": ["stale"]})]
    world.apply(plan)
    assert world.model.tags == {"team": "support", "cost": "cx", "aws:cloudformation:stack-name": "s"}
    assert world.plan(desired).calls == []


def test_the_switch_to_on_demand_within_24_hours_is_skipped_with_a_message(aws):
    world = aws(billing="PROVISIONED", capacity=(5, 5), indexes={i: (5, 5) for i in INDEXES},
                last_on_demand=NOW - timedelta(hours=3))
    plan = world.plan(DesiredConfig())
    assert plan.calls == []
    (blocked,) = plan.blocked
    assert blocked.message == (
        "not switched to on demand: the table last switched to on demand at 2026-03-01 09:00 UTC and DynamoDB limits "
        "switches to on demand within 24 hours — run dynamodb_init again after 2026-03-02 09:00 UTC")
    later = world.plan(DesiredConfig(), now=NOW + timedelta(hours=21, minutes=1))
    assert _expected(later) == [(DYNAMODB, "UpdateTable", {"TableName": "sessions", "BillingMode": "PAY_PER_REQUEST"})]


SCALING = Autoscaling(min=5, max=200, target=70.0)


def test_auto_scaling_registers_a_target_and_a_policy_per_dimension(aws):
    world = aws(billing="PROVISIONED", capacity=(5, 5), indexes={i: (5, 5) for i in INDEXES})
    desired = DesiredConfig(billing_mode="PROVISIONED", autoscaling=SCALING)
    plan = world.plan(desired)
    assert len(plan.calls) == 2 * 2 * (1 + len(INDEXES)) and {c.service for c in plan.calls} == {AUTOSCALING}
    assert _expected(plan)[:2] == [
        (AUTOSCALING, "RegisterScalableTarget", {"ServiceNamespace": "dynamodb", "ResourceId": "table/sessions",
                                                 "ScalableDimension": "dynamodb:table:ReadCapacityUnits",
                                                 "MinCapacity": 5, "MaxCapacity": 200}),
        (AUTOSCALING, "PutScalingPolicy", {
            "PolicyName": "DynamoDBReadCapacityUtilization:table/sessions", "ServiceNamespace": "dynamodb",
            "ResourceId": "table/sessions", "ScalableDimension": "dynamodb:table:ReadCapacityUnits",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": {
                "PredefinedMetricSpecification": {"PredefinedMetricType": "DynamoDBReadCapacityUtilization"}, "TargetValue": 70.0}})]
    assert plan.calls[-1].params["ScalableDimension"] == "dynamodb:index:WriteCapacityUnits"
    assert plan.calls[-1].params["ResourceId"] == f"table/sessions/index/{sorted(INDEXES)[-1]}"
    world.apply(plan)
    assert world.plan(desired).calls == []

    # A changed bound re-registers every target and leaves the policies be; a changed target
    # utilisation re-puts every policy only.
    wider = world.plan(replace(desired, autoscaling=replace(SCALING, max=400)))
    assert {c.operation for c in wider.calls} == {"RegisterScalableTarget"} and len(wider.calls) == 2 * (1 + len(INDEXES))
    world.model.targets[("table/sessions/index/by_day", "dynamodb:index:WriteCapacityUnits")] = (5, 100)
    (one,) = world.plan(desired).calls
    assert one.params["ResourceId"] == "table/sessions/index/by_day" and one.params["MaxCapacity"] == 200


def test_auto_scaling_owns_the_capacity_once_on(aws):
    world = aws(billing="PROVISIONED", capacity=(17, 9), indexes={i: (11, 3) for i in INDEXES})
    desired = DesiredConfig(billing_mode="PROVISIONED", autoscaling=SCALING)
    world.apply(world.plan(desired))
    assert world.plan(desired).calls == []  # the capacity it moved to is not set back


def test_auto_scaling_with_on_demand_is_said_to_do_nothing(aws):
    plan = aws().plan(DesiredConfig(autoscaling=SCALING))
    assert plan.calls == [] and [b.setting for b in plan.blocked] == ["DYNAMODB_AUTOSCALING"]


def test_replicas_one_create_per_missing_region_and_an_unlisted_one_is_kept(aws):
    world = aws(replicas={"ap-southeast-2": "ACTIVE", "eu-west-1": "ACTIVE"})
    desired = DesiredConfig(replica_regions=("eu-west-1", "eu-central-1", "ap-northeast-1"))
    plan = world.plan(desired)
    assert _expected(plan) == [
        (DYNAMODB, "UpdateTable", {"TableName": "sessions", "ReplicaUpdates": [{"Create": {"RegionName": region}}]})
        for region in ("eu-central-1", "ap-northeast-1")]
    (kept,) = plan.blocked
    assert kept.setting == "DYNAMODB_REPLICA_REGIONS" and "ap-southeast-2 is not listed and is kept" in kept.message
    assert ("aws dynamodb update-table --region us-east-1 --table-name sessions --replica-updates "
            "'[{\"Delete\": {\"RegionName\": \"ap-southeast-2\"}}]'") in kept.message
    sent = world.apply(plan)
    assert [s[1] if s != ("wait",) else "wait" for s in sent] == ["UpdateTable", "wait", "UpdateTable", "wait"]
    again = world.plan(desired)
    assert again.calls == [] and [b.message for b in again.blocked] == [kept.message]
    assert "ap-southeast-2" in world.model.replicas  # never deleted


@pytest.mark.parametrize("table, desired, reason", [
    ({"billing": "PROVISIONED", "capacity": (5, 5), "indexes": {i: (5, 5) for i in INDEXES}},
     DesiredConfig(billing_mode="PROVISIONED", replica_regions=("eu-west-1",)), "auto-scaled provisioned capacity"),
    ({"stream": "KEYS_ONLY"}, DesiredConfig(replica_regions=("eu-west-1",)), "replicas need the stream with NEW_AND_OLD_IMAGES"),
    ({}, DesiredConfig(sse="customer", kms_key=CUSTOMER_KEY, replica_regions=("eu-west-1",)), "a key of its own region"),
])
def test_replicas_that_cannot_be_made_are_blocked_not_attempted(aws, table, desired, reason):
    plan = aws(key=CUSTOMER_KEY if desired.sse == "customer" else None, **table).plan(desired)
    assert not any("ReplicaUpdates" in c.params for c in plan.calls)
    assert any(b.setting == "DYNAMODB_REPLICA_REGIONS" and reason in b.message for b in plan.blocked)


def test_waits_for_active_before_the_next_dynamodb_call_after_auto_scaling(aws):
    world = aws()
    desired = DesiredConfig(billing_mode="PROVISIONED", autoscaling=replace(SCALING), replica_regions=("eu-west-1",))
    plan = world.plan(desired)
    ops = [c.operation for c in plan.calls]
    assert ops[0] == "UpdateTable" and ops[-1] == "UpdateTable" and set(ops[1:-1]) == {"RegisterScalableTarget", "PutScalingPolicy"}
    sent = [s[1] if s != ("wait",) else "wait" for s in world.apply(plan)]
    # After the switch: wait before auto scaling; registrations may update the table: wait
    # before the replica; and at the end.
    assert sent[:3] == ["UpdateTable", "wait", "RegisterScalableTarget"] and sent[-3:] == ["wait", "UpdateTable", "wait"]
    assert sent.count("wait") == 3
    assert world.plan(desired).calls == []


# --- every combination: applying a plan leaves nothing to plan ----------------------------------

DESIRED = {
    "defaults": DesiredConfig(),
    "provisioned": DesiredConfig(billing_mode="PROVISIONED", capacity=Capacity(7, 3),
                                 index_capacity={"by_day": Capacity(2, 1), "summary_due": Capacity(1, 1)}),
    "autoscaled": DesiredConfig(billing_mode="PROVISIONED", autoscaling=SCALING),
    "protected": DesiredConfig(pitr=True, deletion_protection=True, tags={"team": "support", "env": "prod"}),
    "managed-key-ia": DesiredConfig(sse="aws-managed", table_class="STANDARD_INFREQUENT_ACCESS"),
    "customer-key": DesiredConfig(sse="customer", kms_key=CUSTOMER_KEY),
    "customer-alias": DesiredConfig(sse="customer", kms_key="alias/mangaassist", deletion_protection=True),
    "global": DesiredConfig(replica_regions=("eu-west-1", "ap-northeast-1")),
    "everything": DesiredConfig(billing_mode="PROVISIONED", autoscaling=SCALING, pitr=True, deletion_protection=True,
                                sse="aws-managed", table_class="STANDARD_INFREQUENT_ACCESS", tags={"team": "support"},
                                replica_regions=("eu-west-1",)),
}
TABLES = {
    "missing": {"exists": False},
    "default": {},
    "drifted": {"billing": "PROVISIONED", "capacity": (1, 1), "last_on_demand": None,
                "indexes": {i: (1, 1) for i in INDEXES if i != "by_owner"}, "stream": None, "key": OTHER_KEY,
                "table_class": "STANDARD_INFREQUENT_ACCESS", "deletion_protection": True, "ttl": False, "pitr": True,
                "tags": {"team": "old", "stale": "x", "aws:cloudformation:stack-name": "s"}},
}


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("desired", DESIRED)
def test_a_plan_applied_leaves_nothing_to_plan_and_lists_exactly_the_calls_made(aws, table, desired):
    world, want = aws(**TABLES[table]), DESIRED[desired]
    plan = world.plan(want)
    assert plan.calls or (table, desired) == ("default", "defaults"), "a harness that plans nothing proves nothing"
    sent = world.apply(plan)
    assert _writes([s for s in sent if s != ("wait",)]) == _expected(plan)
    again = world.plan(want)
    assert again.calls == [], [c.line() for c in again.calls]
    assert again.blocked == plan.blocked or table == "missing"
