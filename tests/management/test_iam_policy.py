"""manage.py iam_policy: the policies are derived from what the code does.

A scripted run of each role's flows — the bot's API and the staff console (web), the Celery
tasks (worker), a stream consumer over the records those flows wrote (stream), dynamodb_init and
dynamodb_backup (deploy) — records every DynamoDB and DynamoDB Streams call the code makes, with
a botocore event handler on every such client created during the run. Then:

- each recorded call's permissions (``sessions_app.iam.permissions_for_call``: the action and the
  resource ARN IAM checks) are granted by that role's policy, and so are the ``dax:`` permissions
  the same call needs with DAX on;
- no role is granted a DynamoDB action its flows never needed (the sets are exact, not generous);
- no action anywhere contains "*", and every document is a valid policy document.

The handler is on ``before-parameter-build``: it sees the request as the code built it (at
``before-call`` it is already serialised). DynamoDB Local has no backups: the backup calls are
answered by botocore's Stubber and recorded all the same.
"""

from __future__ import annotations

import copy
import fnmatch
import json
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from io import StringIO

import botocore.session
import pytest
from botocore.stub import ANY, Stubber
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from sessions_app import dynamo, iam, tasks
from sessions_app.clock import utcnow
from sessions_app.services.api_keys import api_key_create
from sessions_app.services.table import table_delete
from sessions_app.streams.consumer import stream_arn_of
from tests.api.conftest import Api
from tests.fixtures.http_receiver import receiving
from tests.streams.conftest import drain, make_consumer

ACCOUNT, REGION = "123456789012", "us-east-1"
RECORDED_SERVICES = ("dynamodb", "dynamodbstreams")


@dataclass
class Call:
    role: str
    service: str
    operation: str
    params: dict


@dataclass
class Recorder:
    role: str | None = None
    calls: list[Call] = field(default_factory=list)

    def __call__(self, params, model, **kwargs):
        if self.role is not None:
            self.calls.append(Call(self.role, model.service_model.service_name, model.name, copy.deepcopy(params)))

    @contextmanager
    def as_role(self, role: str):
        self.role = role
        try:
            yield
        finally:
            self.role = None

    @contextmanager
    def paused(self):
        """Setting the scene inside a flow: not one of the role's own calls."""
        role, self.role = self.role, None
        try:
            yield
        finally:
            self.role = role

    def of(self, role: str) -> list[Call]:
        return [c for c in self.calls if c.role == role]


@pytest.fixture
def recorder(monkeypatch):
    """Every DynamoDB/Streams client created from now on reports its calls to the recorder."""
    recorder = Recorder()
    create_client = botocore.session.Session.create_client

    def recording_client(self, service_name, *args, **kwargs):
        client = create_client(self, service_name, *args, **kwargs)
        if service_name in RECORDED_SERVICES:
            client.meta.events.register("before-parameter-build", recorder)
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", recording_client)
    dynamo.reset_connections()  # the clients built before this point are not recorded
    yield recorder
    dynamo.reset_connections()


def _staff(username: str, group: str) -> Client:
    user = User.objects.create_user(username=username, password="pw", is_staff=True, first_name=username.title())
    user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


def _ok(response, *codes):
    assert response.status_code in (codes or (200,)), (response.status_code, response.content[:500])
    return response


# --- the flows ------------------------------------------------------------------------------------

def web_flows(settings) -> dict:
    """The bot runtime's API and the staff console, through the Django test client."""
    api = Api(client=Client(), key=api_key_create(name="bot-runtime", scope="write")[1])
    supervisor, agent = _staff("sam", "Supervisor"), _staff("ada", "Agent")

    def start(customer: str) -> str:
        return _ok(api.post("/sessions", {"customer_id": customer, "channel": "web", "tags": ["iam"]}), 201).json()["session_id"]

    sid = start("cust-iam")
    for n in range(1, 5):
        _ok(api.post(f"/sessions/{sid}/turns", {"role": "user" if n % 2 else "assistant", "text": f"turn {n} about volume {n}",
                                                "client_msg_id": f"m{n}"}), 201)
    _ok(api.post(f"/sessions/{sid}/turns", {"role": "user", "text": "turn 1 about volume 1", "client_msg_id": "m1"}), 200)
    _ok(api.get(f"/sessions/{sid}"))
    for _ in range(2):  # a miss, then the context cache
        _ok(api.get(f"/sessions/{sid}/context"))
    _ok(api.get(f"/sessions/{sid}/context", turns=2, min_seq=3))
    today = utcnow().date().isoformat()
    for params in ({}, {"customer_id": "cust-iam"}, {"status": "active"}, {"channel": "web"},
                   {"day_from": today, "day_to": today}, {"summary_state": "none"}, {"online": "true"}):
        _ok(api.get("/sessions", **params))
    _ok(api.get("/search", q="volume"))
    _ok(api.put("/connections/conn-iam-1", {"session_id": sid}))
    _ok(api.get("/connections/conn-iam-1"))
    _ok(api.delete("/connections/conn-iam-1"), 204)
    _ok(api.post(f"/sessions/{sid}/heartbeat"))
    _ok(api.post(f"/sessions/{sid}/handoff", {"reason": "asks for a human", "note": "order 1234"}))

    # The console: an agent takes over, replies, hands back; a supervisor reads every page.
    _ok(agent.post(reverse("dashboard:session_takeover", args=[sid])), 200, 302)
    _ok(agent.post(reverse("dashboard:session_reply", args=[sid]), {"text": "Hello, this is Ada."}), 200, 302)
    _ok(agent.post(reverse("dashboard:session_redeliver", args=[sid, 5])), 200, 302)
    for name, args, params in (("overview", [], {}), ("overview_metrics", [], {}), ("overview_activity", [], {}),
                               ("handoff_queue", [], {}), ("handoff_queue_rows", [], {}),
                               ("session_list", [], {}), ("session_list_rows", [], {"status": "handed_off"}),
                               ("session_list", [], {"customer_id": "cust-iam"}), ("session_list", [], {"channel": "web"}),
                               ("search", [], {"q": "volume"}), ("session_detail", [sid], {}),
                               ("session_turns", [sid], {"cursor": ""}), ("session_summary_panel", [sid], {}),
                               ("session_verify", [sid], {}), ("customer_detail", ["cust-iam"], {})):
        _ok(supervisor.get(reverse(f"dashboard:{name}", args=args), params))
    _ok(supervisor.post(reverse("dashboard:session_viewing", args=[sid])), 200, 204)
    _ok(supervisor.post(reverse("dashboard:session_export", args=[sid]), {"format": "json"}))
    _ok(supervisor.post(reverse("dashboard:customer_export", args=["cust-iam"]), {"format": "csv"}))
    _ok(supervisor.post(reverse("dashboard:filter_export") + "?channel=web", {"format": "json"}))
    _ok(supervisor.post(reverse("dashboard:session_summarize", args=[sid])), 200, 302)
    _ok(agent.post(reverse("dashboard:session_handback", args=[sid])), 200, 302)
    _ok(api.post(f"/sessions/{sid}/close"))
    _ok(Client().get("/readyz"), 200, 503)
    _ok(supervisor.get(reverse("dashboard:infrastructure")))

    # Privacy deletes run in the console's request: one session, then everything of a customer.
    doomed = start("cust-gone")
    _ok(api.post(f"/sessions/{doomed}/turns", {"role": "user", "text": "forget me", "client_msg_id": "g1"}), 201)
    _ok(supervisor.get(reverse("dashboard:session_delete", args=[doomed])))
    _ok(supervisor.post(reverse("dashboard:session_delete", args=[doomed]), {"confirm": doomed}))
    start("cust-gone-too")
    _ok(supervisor.get(reverse("dashboard:customer_delete", args=["cust-gone-too"])))
    _ok(supervisor.post(reverse("dashboard:customer_delete", args=["cust-gone-too"]), {"confirm": "cust-gone-too"}))
    return {"session_id": sid}


def worker_flows(settings, *, session_id: str) -> None:
    """Each Celery task as a worker runs it (in this process), and beat's scheduled backup."""
    from sessions_app.services.sessions import session_start
    from sessions_app.services.summaries import summary_mark_attempt
    from sessions_app.services.turns import turn_append

    meta, _ = session_start(customer_id="cust-worker", channel="app")
    for n in range(1, 4):
        turn_append(session_id=meta.session_id, role="user", text=f"question {n}", client_msg_id=f"w{n}")
    assert tasks.summary_generate.apply(args=[meta.session_id]).get()["status"] == "written"
    assert tasks.summary_generate.apply(args=[meta.session_id]).get()["status"] == "covered"
    # What SummaryTask's on_retry/on_failure record on META.
    summary_mark_attempt(session_id=meta.session_id, task_id="task-1", retries=1, error="throttled", failed=True)
    settings.SUMMARY_IDLE_MINUTES = 0
    turn_append(session_id=meta.session_id, role="user", text="one more", client_msg_id="w4")
    tasks.summary_sweep.apply().get()
    settings.HANDOFF_IDLE_MINUTES = 0
    tasks.handoff_lapse_sweep.apply().get()
    tasks.search_retention_sweep.apply().get()
    tasks.alerts_evaluate.apply().get()
    with receiving("/hooks/iam") as receiver:
        settings.BOT_WEBHOOK_URL, settings.BOT_WEBHOOK_SECRET = receiver.url, "whsec-" + "x" * 32
        receiver.then = 200
        tasks.webhook_deliver.apply(args=[session_id, 5]).get()
    settings.DYNAMODB_BACKUP_INTERVAL_HOURS = 24
    with _backups_stubbed(settings.DYNAMODB_TABLE, old=True) as stub:
        stub.add_response("create_backup", _created(settings.DYNAMODB_TABLE), {"TableName": settings.DYNAMODB_TABLE,
                                                                               "BackupName": ANY})
        stub.add_response("list_backups", _listing(settings.DYNAMODB_TABLE))
        stub.add_response("delete_backup", {}, {"BackupArn": _backup_arn(settings.DYNAMODB_TABLE, 1)})
        tasks.dynamodb_backup_scheduled.apply().get()


def stream_flows(settings) -> None:
    """stream_consume's start (lease table, stream ARN) and a consumer over everything so far."""
    from sessions_app.streams.leases import lease_table_ensure

    settings.STREAM_LEASE_SECONDS, settings.STREAM_POLL_SECONDS, settings.STREAM_DISCOVERY_SECONDS = 2.0, 0.05, 0.5
    assert lease_table_ensure() is False
    arn = stream_arn_of()
    consumer = make_consumer(arn, name="iam")
    drain(consumer)
    assert consumer.stats.records > 0
    consumer.release_all()


def deploy_flows(settings, recorder: Recorder, *, table: str) -> None:
    """dynamodb_init on a new table; on the table as an older release left it (an index and the
    stream missing, sessions without the index's keys): it adds both and backfills; again
    (nothing to do), with --backfill; then dynamodb_backup create, list, prune."""
    from sessions_app.models import SessionMeta
    from sessions_app.services.sessions import session_start
    from sessions_app.services.table import _wait_active

    settings.DYNAMODB_TABLE = table
    out = StringIO()
    call_command("dynamodb_init", stdout=out)
    with recorder.paused():
        client = dynamo.connection().client
        client.update_table(TableName=table, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "by_channel"}}])
        _wait_active(client, table, 60)
        client.update_table(TableName=table, StreamSpecification={"StreamEnabled": False})
        _wait_active(client, table, 60)
        meta, _ = session_start(customer_id="cust-backfill", channel="web")
        meta.update(actions=[SessionMeta.gsi5pk.remove(), SessionMeta.gsi5sk.remove()])
    call_command("dynamodb_init", stdout=out)
    assert "indexes added: by_channel" in out.getvalue() and "index keys backfilled: 1 of 1" in out.getvalue()
    call_command("dynamodb_init", stdout=out)
    call_command("dynamodb_init", "--backfill", stdout=out)
    with _backups_stubbed(table) as stub:
        stub.add_response("create_backup", _created(table), {"TableName": table, "BackupName": "before-release"})
        call_command("dynamodb_backup", "create", "--name", "before-release", stdout=out)
    with _backups_stubbed(table, old=True) as stub:
        call_command("dynamodb_backup", "list", stdout=out)
    with _backups_stubbed(table, old=True) as stub:
        stub.add_response("delete_backup", {}, {"BackupArn": _backup_arn(table, 1)})
        call_command("dynamodb_backup", "prune", "--older-than-days", "35", stdout=out)


def _backup_arn(table: str, n: int) -> str:
    return f"arn:aws:dynamodb:ddblocal:000000000000:table/{table}/backup/0177000000000{n}-0000000{n}"


def _created(table: str) -> dict:
    return {"BackupDetails": {"BackupArn": _backup_arn(table, 9), "BackupName": "scheduled", "BackupStatus": "CREATING",
                              "BackupType": "USER", "BackupCreationDateTime": datetime.now(timezone.utc)}}


def _listing(table: str) -> dict:
    now = datetime.now(timezone.utc)
    return {"BackupSummaries": [
        {"TableName": table, "BackupArn": _backup_arn(table, n), "BackupName": f"backup-{n}", "BackupStatus": "AVAILABLE",
         "BackupType": "USER", "BackupCreationDateTime": now - timedelta(days=days)}
        for n, days in ((1, 90), (2, 40))]}


@contextmanager
def _backups_stubbed(table: str, *, old: bool = False):
    """DynamoDB Local has no backups: the Stubber answers, the recorder still sees the calls."""
    with Stubber(dynamo.connection().client) as stub:
        if old:
            stub.add_response("list_backups", _listing(table))
        yield stub
        stub.assert_no_pending_responses()


@pytest.fixture
def recorded(recorder, ddb, redis_client, db, settings, table_name):
    """Every role's flows, recorded; plus what each needs to judge them."""
    with recorder.as_role("web"):
        web = web_flows(settings)
    with recorder.as_role("worker"):
        worker_flows(settings, session_id=web["session_id"])
    stream_arn = stream_arn_of()
    with recorder.as_role("stream"):
        stream_flows(settings)
    deploy_table = f"{table_name}-deploy"
    try:
        with recorder.as_role("deploy"):
            deploy_flows(settings, recorder, table=deploy_table)
    finally:
        table_delete(table_name=deploy_table)
        settings.DYNAMODB_TABLE = table_name
    return {"recorder": recorder, "table": table_name, "deploy_table": deploy_table, "stream_arn": stream_arn}


# --- judging --------------------------------------------------------------------------------------

def _deployment(table: str, **overrides) -> iam.Deployment:
    return iam.deployment_from_settings(account_id=ACCOUNT, region=REGION, table=table, dax_cluster="sessions-dax",
                                        dax_write_through=True, backups_scheduled=True, **overrides)


def allows(document: dict, action: str, resource: str) -> bool:
    """Whether an Allow statement (without conditions) of ``document`` grants ``action`` on
    ``resource`` — IAM's matching: case-insensitive actions, ``*``/``?`` patterns in resources."""
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow" or "Condition" in statement:
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if any(a.lower() == action.lower() for a in actions) and any(fnmatch.fnmatchcase(resource, r) for r in resources):
            return True
    return False


def _needed(recorded: dict, role: str) -> dict[tuple[str, str], set[str]]:
    """(action, resource) → the operations that needed it, for ``role``'s recorded calls."""
    table = recorded["deploy_table"] if role == "deploy" else recorded["table"]
    deployment = _deployment(table)
    needed: dict[tuple[str, str], set[str]] = defaultdict(set)
    for call in recorded["recorder"].of(role):
        pairs = iam.permissions_for_call(call.service, call.operation, call.params, deployment=deployment,
                                         stream_arn=recorded["stream_arn"])
        pairs += iam.dax_permissions_for_call(call.operation, call.params, deployment=deployment)
        for pair in pairs:
            needed[pair].add(call.operation)
    return needed


def _problems(recorded: dict, role: str) -> list[str]:
    table = recorded["deploy_table"] if role == "deploy" else recorded["table"]
    document = iam.policy_document(role, _deployment(table))
    needed = _needed(recorded, role)
    if not needed:
        return [f"{role}: the flows made no DynamoDB call (the recording is broken)"]
    problems = sorted(f"{role}: not granted: {action} on {resource} (for {', '.join(sorted(ops))})"
                      for (action, resource), ops in needed.items() if not allows(document, action, resource))
    # Least privilege: every DynamoDB (and DAX) action granted was needed by some call.
    used = {action for action, _ in needed}
    granted = {a for s in document["Statement"] for a in s["Action"] if a.startswith(("dynamodb:", "dax:"))}
    problems += [f"{role}: granted but never used: {action}" for action in sorted(granted - used)]
    return problems


def test_every_call_each_role_makes_is_granted_and_nothing_more(recorded):
    # A guard on the harness itself: a recorder that missed whole flows would pass anything.
    ops = {role: {c.operation for c in recorded["recorder"].of(role)} for role in iam.ROLES}
    assert {"PutItem", "TransactWriteItems", "BatchWriteItem", "Query", "BatchGetItem", "GetItem"} <= ops["web"]
    assert {"TransactWriteItems", "UpdateItem", "CreateBackup", "DeleteBackup", "ListBackups"} <= ops["worker"]
    assert {"DescribeStream", "GetShardIterator", "GetRecords", "PutItem", "UpdateItem"} <= ops["stream"]
    assert {"CreateTable", "UpdateTable", "UpdateTimeToLive", "CreateBackup", "DeleteBackup"} <= ops["deploy"]
    assert "Scan" not in set().union(*ops.values())

    problems = [p for role in iam.ROLES for p in _problems(recorded, role)]
    assert not problems, "the policies and the code disagree:\n" + "\n".join(problems)


# --- the documents --------------------------------------------------------------------------------

def _everything(settings, **overrides) -> dict[str, dict]:
    settings.DYNAMODB_SSE, settings.DYNAMODB_KMS_KEY = "customer", "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab"
    settings.DAX_CLUSTER_NAME, settings.DAX_STATS_URL = "sessions-dax", None
    settings.DAX_ENDPOINTS = ["daxs://sessions-dax.abc123.dax-clusters.us-east-1.amazonaws.com"]
    settings.SUMMARIZER, settings.BEDROCK_MODEL_ID = "bedrock", "us.anthropic.claude-3-haiku-20240307-v1:0"
    settings.DYNAMODB_BACKUP_INTERVAL_HOURS, settings.DYNAMODB_PITR = 24, True
    settings.DYNAMODB_TAGS, settings.DYNAMODB_REPLICA_REGIONS = ["team=support"], ["eu-west-1"]
    settings.DYNAMODB_BILLING_MODE, settings.DYNAMODB_AUTOSCALING = "PROVISIONED", True
    documents = iam.policy_documents(ACCOUNT, REGION, **overrides)
    settings.DAX_ENDPOINTS = []
    return documents


def test_documents_are_valid_policies_without_wildcard_actions(settings):
    for role, document in _everything(settings).items():
        assert json.loads(json.dumps(document)) == document
        assert set(document) == {"Version", "Statement"} and document["Version"] == "2012-10-17"
        sids = [s["Sid"] for s in document["Statement"]]
        assert len(sids) == len(set(sids)) and all(sid.isalnum() for sid in sids)
        for statement in document["Statement"]:
            assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
            assert statement["Effect"] == "Allow" and statement["Action"] and statement["Resource"]
            assert all(isinstance(a, str) and "*" not in a and a.count(":") == 1 for a in statement["Action"])
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            assert all(r == "*" or r.startswith("arn:aws:") for r in resources)
        # Policies of this size stay under IAM's 6,144 characters for a managed policy.
        assert len(json.dumps(document, separators=(",", ":"))) < 6144, role


def test_the_optional_parts_follow_the_settings(settings):
    documents = _everything(settings)
    by_sid = {role: {s["Sid"]: s for s in doc["Statement"]} for role, doc in documents.items()}
    dax_arn = "arn:aws:dax:us-east-1:123456789012:cache/sessions-dax"
    for role in ("web", "worker"):
        assert by_sid[role]["DaxCluster"]["Resource"] == [dax_arn]
        assert "dax:Query" in by_sid[role]["DaxCluster"]["Action"]
    assert by_sid["worker"]["DaxHitRatios"]["Action"] == ["cloudwatch:GetMetricData"]
    assert by_sid["web"]["CloudWatchMetrics"]["Action"] == ["cloudwatch:GetMetricData"]
    assert "dax:GetItem" in by_sid["web"]["DaxCluster"]["Action"]
    assert by_sid["deploy"]["DaxCluster"]["Action"] == ["dax:Query", "dax:UpdateItem"]  # the backfill
    assert "DaxCluster" not in by_sid["stream"]  # leases and the stream: never through DAX
    assert "DaxHitRatios" not in by_sid["stream"] and "DaxHitRatios" not in by_sid["deploy"]
    for role in iam.ROLES:
        key = by_sid[role]["TableKey"]
        assert key["Resource"] == ["arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab"]
        assert key["Condition"]["StringEquals"]["kms:ViaService"] == "dynamodb.us-east-1.amazonaws.com"
        assert {"kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"} <= set(key["Action"])
    assert "kms:CreateGrant" in by_sid["deploy"]["TableKey"]["Action"]
    assert "kms:CreateGrant" not in by_sid["web"]["TableKey"]["Action"]
    assert by_sid["worker"]["Summarizer"] == {
        "Sid": "Summarizer", "Effect": "Allow", "Action": ["bedrock:InvokeModel"],
        "Resource": ["arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
                     "arn:aws:bedrock:*::foundation-model/anthropic.claude-3-haiku-20240307-v1:0"]}
    assert all("Summarizer" not in by_sid[r] for r in ("web", "stream", "deploy"))
    assert {"dynamodb:CreateBackup", "dynamodb:DeleteBackup", "dynamodb:ListBackups"} <= {
        a for s in documents["worker"]["Statement"] for a in s["Action"]}
    deploy = by_sid["deploy"]
    assert {"dynamodb:UpdateContinuousBackups", "dynamodb:TagResource"} <= set(deploy["SessionTable"]["Action"])
    assert deploy["GlobalTableReplicas"]["Resource"] == [
        "arn:aws:dynamodb:us-east-1:123456789012:table/mangaassist-sessions",
        "arn:aws:dynamodb:eu-west-1:123456789012:table/mangaassist-sessions"]
    assert "application-autoscaling:RegisterScalableTarget" in deploy["TableAutoScaling"]["Action"]


def test_without_the_options_there_is_nothing_of_them(settings):
    settings.DYNAMODB_SSE, settings.DAX_ENDPOINTS, settings.DAX_CLUSTER_NAME = "aws-owned", [], None
    settings.SUMMARIZER, settings.DYNAMODB_BACKUP_INTERVAL_HOURS = "extractive", 0
    settings.DYNAMODB_PITR, settings.DYNAMODB_TAGS, settings.DYNAMODB_REPLICA_REGIONS = False, [], []
    settings.DYNAMODB_AUTOSCALING = False
    documents = iam.policy_documents(ACCOUNT, REGION)
    actions = {role: {a for s in doc["Statement"] for a in s["Action"]} for role, doc in documents.items()}
    # The web role's one other action: the infrastructure page's consumed capacity (CloudWatch).
    assert all(a.startswith("dynamodb:") or (role == "web" and a == "cloudwatch:GetMetricData")
               for role in actions for a in actions[role])
    assert "dynamodb:CreateBackup" not in actions["worker"] and "dynamodb:CreateBackup" in actions["deploy"]
    assert not any(a.startswith("dynamodb:Create") or a.startswith("dynamodb:Delete") for a in actions["web"])


def test_an_alias_key_is_granted_through_the_alias_condition(settings):
    settings.DYNAMODB_SSE, settings.DYNAMODB_KMS_KEY = "customer", "alias/mangaassist"
    key = {s["Sid"]: s for s in iam.policy_documents(ACCOUNT, "eu-west-1")["web"]["Statement"]}["TableKey"]
    assert key["Resource"] == ["arn:aws:kms:eu-west-1:123456789012:key/*"]
    assert key["Condition"]["ForAnyValue:StringEquals"] == {"kms:ResourceAliases": "alias/mangaassist"}


def test_the_command_prints_one_role_or_all(settings):
    out = StringIO()
    call_command("iam_policy", "--account-id", ACCOUNT, "--role", "stream", stdout=out)
    stream = json.loads(out.getvalue())
    assert stream["Version"] == "2012-10-17" and stream == iam.policy_documents(ACCOUNT)["stream"]
    out = StringIO()
    call_command("iam_policy", "--account-id", ACCOUNT, "--region", "ap-northeast-1", stdout=out)
    everything = json.loads(out.getvalue())
    assert set(everything) == set(iam.ROLES)
    assert everything["web"]["Statement"][0]["Resource"] == [
        f"arn:aws:dynamodb:ap-northeast-1:{ACCOUNT}:table/{settings.DYNAMODB_TABLE}"]
    with pytest.raises(CommandError, match="12 digits"):
        call_command("iam_policy", "--account-id", "nope", stdout=StringIO())


def test_an_aws_managed_key_lets_deploy_describe_it_and_nothing_else(settings):
    settings.DYNAMODB_SSE = "aws-managed"
    documents = iam.policy_documents(ACCOUNT, REGION)
    by_sid = {role: {st["Sid"]: st for st in doc["Statement"]} for role, doc in documents.items()}
    assert by_sid["deploy"]["ManagedTableKey"]["Action"] == ["kms:DescribeKey"]
    assert by_sid["deploy"]["ManagedTableKey"]["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/aws/dynamodb"}}
    assert all("ManagedTableKey" not in by_sid[r] for r in ("web", "worker", "stream"))
