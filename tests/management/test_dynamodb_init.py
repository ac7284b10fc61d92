"""manage.py dynamodb_init: prints the plan, then applies it; ``--plan`` only prints. On DynamoDB
Local (the plans themselves: tests/services/test_table_config.py)."""

from __future__ import annotations

from io import StringIO

import pytest
from botocore.exceptions import ClientError
from django.core.management import CommandError, call_command

from sessions_app import dynamo
from sessions_app.services.table import table_delete


def _run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("dynamodb_init", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def _describe(name):
    return dynamo.connection().client.describe_table(TableName=name)["Table"]


@pytest.fixture
def new_table(infra, table_name, settings):
    """A table name with no table yet (dropped after the test if one was made)."""
    settings.DYNAMODB_TABLE, settings.DAX_ENDPOINTS = table_name, []
    dynamo.reset_connections()
    yield table_name
    table_delete(table_name=table_name)
    dynamo.reset_connections()


def test_plan_on_a_missing_table_prints_every_call_and_makes_none(new_table):
    out, err = _run("--plan")
    lines = out.splitlines()
    assert lines[0] == f"table {new_table}: plan, 3 call(s)" and not err
    assert lines[1].startswith("  CreateTable BillingMode=PAY_PER_REQUEST StreamEnabled=true StreamViewType=NEW_AND_OLD_IMAGES "
                               "GlobalSecondaryIndexes=[by_channel,by_customer,")
    assert lines[1].endswith(f" — DYNAMODB_TABLE={new_table}")
    assert lines[2] == "  UpdateTimeToLive Enabled=true AttributeName=ttl — sessions expire by their 'ttl' attribute"
    assert lines[3] == (f"  CreateTable {new_table}-leases (lease_table_ensure: on demand, TTL on ttl)"
                        " — DYNAMODB_STREAM=1 (the stream consumers' leases)")
    with pytest.raises(ClientError, match="ResourceNotFound|not found"):
        _describe(new_table)


def test_the_run_prints_its_plan_applies_it_and_the_second_run_changes_nothing(new_table):
    out, _ = _run()
    assert f"table {new_table}: plan, 3 call(s)" in out and "  [1/3] CreateTable" in out
    assert f"table {new_table}: created; TTL enabled; stream enabled (NEW_AND_OLD_IMAGES); stream lease table created" in out
    out, err = _run()
    assert out.splitlines()[0] == f"table {new_table}: up to date, nothing changed" and not err
    assert out.splitlines()[1].startswith("  stream: arn:aws:dynamodb:")
    out, _ = _run("--plan")
    assert out == f"table {new_table}: up to date, nothing to change\n"


def test_plan_shows_a_change_and_leaves_the_table_as_it_is(ddb, settings):
    settings.DYNAMODB_DELETION_PROTECTION = True
    out, _ = _run("--plan")
    assert out == (f"table {ddb}: plan, 1 call(s)\n"
                   "  UpdateTable DeletionProtectionEnabled=true — DYNAMODB_DELETION_PROTECTION=1\n")
    assert _describe(ddb)["DeletionProtectionEnabled"] is False
    out, _ = _run()
    assert "  [1/1] UpdateTable DeletionProtectionEnabled=true" in out
    assert f"table {ddb}: updated; configured: DYNAMODB_DELETION_PROTECTION" in out
    assert _describe(ddb)["DeletionProtectionEnabled"] is True
    assert "up to date, nothing changed" in _run()[0]


def test_what_is_blocked_is_said_on_stderr_and_nothing_is_attempted(ddb, settings):
    settings.DYNAMODB_BILLING_MODE = "PROVISIONED"
    assert "configured: DYNAMODB_BILLING_MODE" in _run()[0]
    settings.DYNAMODB_BILLING_MODE = "PAY_PER_REQUEST"  # back within 24 hours of the last switch to on demand
    out, err = _run()
    assert "up to date, nothing changed" in out
    assert "DYNAMODB_BILLING_MODE: not switched to on demand" in err and "within 24 hours" in err
    assert "BillingModeSummary" not in _describe(ddb) or _describe(ddb)["BillingModeSummary"]["BillingMode"] == "PROVISIONED"


def test_a_setting_dynamodb_local_lacks_is_a_command_error_naming_it(ddb, settings):
    settings.DYNAMODB_PITR = True
    out = StringIO()
    with pytest.raises(CommandError, match=r"^DYNAMODB_PITR: UpdateContinuousBackups \(DYNAMODB_PITR=1\) was refused — "
                                           r"UnknownOperationException.*leave DYNAMODB_PITR at its default locally"):
        call_command("dynamodb_init", stdout=out, stderr=StringIO())
    assert "  UpdateContinuousBackups PointInTimeRecoveryEnabled=true — DYNAMODB_PITR=1" in out.getvalue()
