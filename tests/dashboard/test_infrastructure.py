"""The infrastructure page (Supervisor): the table as DynamoDB Local describes it, with the reads it
does not support said as unavailable with their real error; DAX; Redis; the per-process cache;
and the selector against a Stubber-backed boto3 client for what DynamoDB Local cannot answer
(PITR, backups, CloudWatch)."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone

import boto3
import pytest
import redis
from botocore.stub import Stubber
from django.template.loader import render_to_string
from django.urls import reverse

from devtools import procs
from sessions_app import dynamo
from sessions_app.models import AuditLog, SessionMeta
from sessions_app.selectors import infrastructure as infra_selectors

URL = "/infrastructure/"
PITR_LOCAL = "DescribeContinuousBackups is not supported by this endpoint (DynamoDB Local): UnknownOperationException"
BACKUPS_LOCAL = "ListBackups is not supported by this endpoint (DynamoDB Local): UnknownOperationException"
CLOUDWATCH_LOCAL = ("CloudWatch GetMetricData is not supported by this endpoint (DynamoDB Local): "
                    "DynamoDB Local publishes no AWS/DynamoDB metrics")


@pytest.fixture(autouse=True)
def fresh_cache():
    infra_selectors.infrastructure_cache_clear()
    yield
    infra_selectors.infrastructure_cache_clear()


def _body(response) -> str:
    return html.unescape(response.content.decode())


def _between(body: str, start: str, end: str = "</section>") -> str:
    """The markup from ``start`` to the next ``end``: one panel or one row."""
    at = body.index(start)
    return body[at:body.index(end, at)]


def test_the_url_is_named():
    assert reverse("dashboard:infrastructure") == URL


def test_the_page_against_dynamodb_local_and_redis(console, supervisor_client, redis_client):
    table = dynamo.connection().client.describe_table(TableName=console)["Table"]
    response = supervisor_client.get(URL)
    assert response.status_code == 200
    body = _body(response)

    panel = _between(body, 'id="infra-table"')
    assert f"<code>{console}</code>" in panel
    assert 'data-metric="table-status"><span class="badge status-active">ACTIVE</span>' in panel
    assert "on demand (PAY_PER_REQUEST)" in panel  # dynamodb_init's table
    created = table["CreationDateTime"].astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert created in panel  # times carry their zone
    assert f'<code data-metric="stream-arn">{table["LatestStreamArn"]}</code>' in panel
    assert "NEW_AND_OLD_IMAGES" in panel
    assert "AWS owned key" in panel and 'data-metric="replicas-none"' in panel
    for index in (i["index_name"] for i in SessionMeta._get_schema()["global_secondary_indexes"]):
        row = _between(panel, f'data-index="{index}"', "</tr>")
        assert 'data-status="ACTIVE"' in row and ">ACTIVE</span>" in row, index

    recovery = _between(body, 'id="infra-recovery"')
    assert 'data-metric="ttl" data-available="yes">ENABLED on <code>ttl</code>' in recovery
    assert f'data-unavailable="DescribeContinuousBackups">DescribeContinuousBackups unavailable: {PITR_LOCAL}' \
        in recovery
    assert f'data-unavailable="ListBackups">ListBackups unavailable: {BACKUPS_LOCAL}' in recovery
    assert 'data-metric="pitr" data-available="no"' in recovery
    assert 'data-metric="last-backup" data-available="no"' in recovery

    capacity = _between(body, 'id="infra-capacity"')
    assert 'data-available="no"' in capacity and CLOUDWATCH_LOCAL in capacity
    assert f'data-capacity="{console}"' in capacity and 'data-capacity="by_day"' in capacity
    assert "on demand" in capacity

    info = redis_client.info()
    redis_panel = _between(body, 'id="infra-redis"')
    assert f'data-metric="redis-version">{info["redis_version"]}<' in redis_panel
    assert f'data-metric="redis-policy">{info["maxmemory_policy"]}<' in redis_panel
    assert f'data-metric="redis-mode">{info["redis_mode"]} · cluster disabled' in redis_panel

    dax = _between(body, 'id="infra-dax"')
    assert "off" in _between(dax, 'data-metric="dax-endpoints"', "</dd>")
    assert 'data-metric="dax-breaker">disabled' in dax
    assert "DAX nodes unavailable: no per-node stats endpoint: DAX_STATS_URL is unset" in dax
    assert "per-node metrics in CloudWatch" in dax
    assert 'id="dax-cluster"' in body  # the overview's DAX nodes panel, reused

    assert 'id="nav-infrastructure"' in body
    assert AuditLog.objects.count() == 0  # reading it is not an action


def test_the_dax_panel_lists_the_nodes(through_dax, supervisor_client):
    body = _body(supervisor_client.get(URL))
    dax = _between(body, 'id="infra-dax"')
    assert f"<code>{through_dax['endpoint']}</code>" in dax
    assert 'data-metric="dax-breaker">closed' in dax
    nodes = _between(body, 'id="dax-cluster"')
    assert 'data-metric="dax-nodes"' in nodes and 'data-node="' in nodes and 'data-role="leader"' in nodes


def test_a_viewer_gets_403_and_the_refusal_is_audited(console, viewer_client):
    assert viewer_client.get(URL).status_code == 403
    row = AuditLog.objects.get()
    assert (row.actor_username, row.action, row.outcome) == ("vera", "infrastructure", "denied")
    assert 'id="nav-infrastructure"' not in viewer_client.get(reverse("dashboard:overview")).content.decode()


def test_anonymous_is_sent_to_login(console, client):
    response = client.get(URL)
    assert response.status_code == 302 and response["Location"] == f"/accounts/login/?next={URL}"


def test_two_loads_within_the_cache_time_make_one_describe_table(console, supervisor_client):
    calls = []
    events = dynamo.connection().client.meta.events
    events.register("before-parameter-build.dynamodb.DescribeTable",
                    lambda **kw: calls.append(kw["params"]["TableName"]), unique_id="test-infra-describe")
    try:
        assert supervisor_client.get(URL).status_code == 200
        assert supervisor_client.get(URL).status_code == 200
        assert calls == [console]
        infra_selectors.infrastructure_cache_clear()  # the counter counts: a cold cache reads again
        assert supervisor_client.get(URL).status_code == 200
        assert calls == [console, console]
    finally:
        events.unregister("before-parameter-build.dynamodb.DescribeTable", unique_id="test-infra-describe")


def test_redis_down_is_unavailable_with_the_error(console, supervisor_client, monkeypatch):
    dead = redis.Redis(host="127.0.0.1", port=procs.free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    monkeypatch.setattr(infra_selectors, "redis_connection", lambda: dead)
    response = supervisor_client.get(URL)
    assert response.status_code == 200
    panel = _between(_body(response), 'id="infra-redis"')
    assert 'data-available="no"' in panel
    assert 'data-unavailable="Redis INFO">Redis INFO unavailable: Redis unavailable: ConnectionError: ' in panel
    # The table's panels still read.
    assert ">ACTIVE</span>" in _body(response)


def _stubbed(service: str):
    client = boto3.client(service, region_name="eu-west-1", aws_access_key_id="stub", aws_secret_access_key="stub")
    return client, Stubber(client)


def test_the_selector_reads_pitr_backups_and_a_provisioned_table_from_aws_shapes():
    """What DynamoDB Local cannot answer, against a real boto3 client whose Stubber checks every
    request and response against the service model."""
    client, stub = _stubbed("dynamodb")
    table = "sessions-prod"
    arn = f"arn:aws:dynamodb:eu-west-1:123456789012:table/{table}"
    earliest = datetime(2025, 1, 30, 23, 59, 1, tzinfo=timezone(timedelta(hours=1)))  # shown in UTC
    latest = datetime(2025, 2, 4, 11, 55, 0, tzinfo=timezone.utc)
    stub.add_response("describe_continuous_backups", {"ContinuousBackupsDescription": {
        "ContinuousBackupsStatus": "ENABLED",
        "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "ENABLED", "RecoveryPeriodInDays": 35,
                                           "EarliestRestorableDateTime": earliest,
                                           "LatestRestorableDateTime": latest}}},
        expected_params={"TableName": table})

    def backup(name: str, created: datetime, kind: str = "USER") -> dict:
        return {"TableName": table, "TableArn": arn, "BackupArn": f"{arn}/backup/{name}", "BackupName": name,
                "BackupCreationDateTime": created, "BackupStatus": "AVAILABLE", "BackupType": kind,
                "BackupSizeBytes": 123456}

    newest = datetime(2025, 2, 4, 3, 0, 5, tzinfo=timezone.utc)
    stub.add_response("list_backups", {
        "BackupSummaries": [backup("nightly-0202", newest - timedelta(days=2)), backup("nightly-0204", newest)],
        "LastEvaluatedBackupArn": f"{arn}/backup/nightly-0204"},
        expected_params={"TableName": table, "BackupType": "ALL"})
    older = backup("aws-backup-0203", newest - timedelta(days=1), "AWS_BACKUP")
    stub.add_response("list_backups", {"BackupSummaries": [older]},
                      expected_params={"TableName": table, "BackupType": "ALL",
                                       "ExclusiveStartBackupArn": f"{arn}/backup/nightly-0204"})
    stub.add_response("describe_table", {"Table": {
        "TableName": table, "TableStatus": "ACTIVE", "TableArn": arn, "ItemCount": 42, "TableSizeBytes": 4096,
        "CreationDateTime": datetime(2024, 6, 1, tzinfo=timezone.utc),
        "BillingModeSummary": {"BillingMode": "PROVISIONED",
                               "LastUpdateToPayPerRequestDateTime": datetime(2024, 12, 1, 8, tzinfo=timezone.utc)},
        "ProvisionedThroughput": {"ReadCapacityUnits": 50, "WriteCapacityUnits": 20, "NumberOfDecreasesToday": 1},
        "GlobalSecondaryIndexes": [{"IndexName": "by_day", "IndexStatus": "CREATING", "Backfilling": True,
                                    "KeySchema": [{"AttributeName": "day_pk", "KeyType": "HASH"}],
                                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                                    "ProvisionedThroughput": {"ReadCapacityUnits": 10, "WriteCapacityUnits": 5}}],
        "SSEDescription": {"Status": "ENABLED", "SSEType": "KMS",
                           "KMSMasterKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/k"},
        "TableClassSummary": {"TableClass": "STANDARD_INFREQUENT_ACCESS"}, "DeletionProtectionEnabled": True,
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        "LatestStreamArn": f"{arn}/stream/2024-06-01T00:00:00.000", "GlobalTableVersion": "2019.11.21",
        "Replicas": [{"RegionName": "us-east-1", "ReplicaStatus": "ACTIVE"},
                     {"RegionName": "ap-northeast-1", "ReplicaStatus": "CREATING",
                      "ReplicaStatusPercentProgress": "40"}],
    }}, expected_params={"TableName": table})

    with stub:
        pitr = infra_selectors.table_pitr(table=table, client=client)
        backup_info = infra_selectors.table_last_backup(table=table, client=client)
        described = infra_selectors.table_description(table=table, client=client)
        # Cached: a second read asks nothing (the Stubber would refuse an unexpected call).
        assert infra_selectors.table_pitr(table=table, client=client) is pitr
    stub.assert_no_pending_responses()

    assert pitr.available and pitr.error is None and pitr.enabled and pitr.recovery_period_days == 35
    assert pitr.earliest_restorable_utc == "2025-01-30 22:59:01 UTC"
    assert pitr.latest_restorable_utc == "2025-02-04 11:55:00 UTC"
    assert (backup_info.available, backup_info.name, backup_info.listed) == (True, "nightly-0204", 3)
    assert backup_info.created_utc == "2025-02-04 03:00:05 UTC" and backup_info.size_bytes == 123456
    assert described.available and not described.on_demand and (described.read_units, described.write_units) == (50, 20)
    assert described.pay_per_request_since_utc == "2024-12-01 08:00:00 UTC"
    (index,) = described.indexes
    assert (index.name, index.status, index.backfilling, index.read_units) == ("by_day", "CREATING", True, 10)
    assert (described.sse_type, described.table_class, described.deletion_protection) == (
        "KMS", "STANDARD_INFREQUENT_ACCESS", True)
    assert [(r.region, r.status, r.progress) for r in described.replicas] == [
        ("us-east-1", "ACTIVE", None), ("ap-northeast-1", "CREATING", "40 %")]

    # The panels render what DynamoDB Local never answers.
    ttl = infra_selectors.TtlInfo(table=table, available=True, status="ENABLED", attribute="ttl")
    recovery = html.unescape(render_to_string("dashboard/partials/infra_recovery.html",
                                              {"infra": {"ttl": ttl, "pitr": pitr, "backup": backup_info}}))
    assert 'data-metric="pitr" data-available="yes">ENABLED <span class="note">(35 days)</span>' in recovery
    assert 'data-metric="pitr-earliest">2025-01-30 22:59:01 UTC' in recovery
    assert "<code>nightly-0204</code> · 2025-02-04 03:00:05 UTC · AVAILABLE · USER" in recovery
    assert "newest of 3" in recovery and "data-unavailable" not in recovery
    panel = html.unescape(render_to_string("dashboard/partials/infra_table.html", {"t": described}))
    assert 'data-metric="table-throughput">50 RCU · 20 WCU' in panel
    assert "last switched to on demand 2024-12-01 08:00:00 UTC" in panel
    assert 'data-index="by_day" data-status="CREATING" class="alert-band"' in panel and "backfilling" in panel
    assert 'data-region="ap-northeast-1" class="alert-band"' in panel and "40 %" in panel
    assert "ENABLED · KMS · <code>arn:aws:kms:eu-west-1:123456789012:key/k</code>" in panel


def test_the_consumed_capacity_is_the_five_minute_sum_per_second():
    client, stub = _stubbed("cloudwatch")
    now = datetime(2025, 2, 4, 12, 7, 31, tzinfo=timezone.utc)
    start, end = datetime(2025, 2, 4, 12, 2, tzinfo=timezone.utc), datetime(2025, 2, 4, 12, 7, tzinfo=timezone.utc)
    queries, _ = infra_selectors._metric_queries("sessions-prod", ("by_day",))
    assert [q["MetricStat"]["Metric"]["Dimensions"] for q in queries][2] == [
        {"Name": "TableName", "Value": "sessions-prod"}, {"Name": "GlobalSecondaryIndexName", "Value": "by_day"}]
    stub.add_response("get_metric_data", {"MetricDataResults": [
        {"Id": "q0_read", "Values": [300.0, 600.0], "StatusCode": "Complete"},
        {"Id": "q0_write", "Values": [150.0], "StatusCode": "Complete"},
        {"Id": "q1_read", "Values": [], "StatusCode": "Complete"},
        {"Id": "q1_write", "Values": [30.0], "StatusCode": "Complete"}]},
        expected_params={"MetricDataQueries": queries, "StartTime": start, "EndTime": end,
                         "ScanBy": "TimestampDescending"})
    with stub:
        consumed = infra_selectors.table_consumed_capacity(table="sessions-prod", indexes=("by_day",), client=client,
                                                           now=now)
    stub.assert_no_pending_responses()
    assert consumed.available and (consumed.start_utc, consumed.end_utc) == ("2025-02-04 12:02:00 UTC",
                                                                              "2025-02-04 12:07:00 UTC")
    table_row, index_row = consumed.rows
    assert (table_row.read_per_second, table_row.write_per_second) == (3.0, 0.5)
    assert (index_row.read_per_second, index_row.write_per_second) == (None, 0.1)  # None: no datapoint

    described = infra_selectors.table_info_from({
        "TableName": "sessions-prod", "TableStatus": "ACTIVE",
        "ProvisionedThroughput": {"ReadCapacityUnits": 10, "WriteCapacityUnits": 5},
        "GlobalSecondaryIndexes": [{"IndexName": "by_day", "IndexStatus": "ACTIVE",
                                    "ProvisionedThroughput": {"ReadCapacityUnits": 4, "WriteCapacityUnits": 1}}],
    }, table="sessions-prod")
    infra = {"consumed": consumed, "capacity": infra_selectors._capacity_rows(described, consumed)}
    panel = html.unescape(render_to_string("dashboard/partials/infra_capacity.html", {"infra": infra}))
    table_cells = _between(panel, 'data-capacity="sessions-prod"', "</tr>")
    assert "10 RCU" in table_cells and "3.00 <span class=\"note\">(30.0 %)</span>" in table_cells
    assert "0.50 <span class=\"note\">(10.0 %)</span>" in table_cells
    index_cells = _between(panel, 'data-capacity="by_day"', "</tr>")
    assert "no datapoint" in index_cells and "0.10 <span class=\"note\">(10.0 %)</span>" in index_cells


def test_an_aws_refusal_is_unavailable_with_its_code_and_message():
    client, stub = _stubbed("dynamodb")
    stub.add_client_error("describe_continuous_backups", service_error_code="AccessDeniedException",
                          service_message="not authorized to perform dynamodb:DescribeContinuousBackups")
    with stub:
        pitr = infra_selectors.table_pitr(table="sessions-prod", client=client)
    assert not pitr.available
    assert pitr.error == ("DescribeContinuousBackups failed: AccessDeniedException: "
                          "not authorized to perform dynamodb:DescribeContinuousBackups")
