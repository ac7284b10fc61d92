"""manage.py dynamodb_backup (create, list, prune) and the beat task around it.

DynamoDB Local implements no backup operation, so CreateBackup, ListBackups and DeleteBackup are
answered by botocore's Stubber on the real client of the table's connection: the Stubber checks
each answer against the service model, and ``_validated`` checks each request against it too
(the connection's client turns botocore's own parameter validation off, for speed)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from io import StringIO

import pytest
from botocore.stub import ANY, Stubber
from botocore.validate import validate_parameters
from django.core.management import CommandError, call_command

from sessions_app import dynamo
from sessions_app.exceptions import StoreUnavailable
from sessions_app.services.backups import backup_create, backup_prune, backup_scheduled
from sessions_app.tasks import dynamodb_backup_scheduled

NOW = datetime(2026, 3, 1, 4, 0, tzinfo=timezone.utc)


def _arn(table: str, n: int) -> str:
    return f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}/backup/0177000000000{n}-{n:08x}"


def _summary(table: str, n: int, *, days_old: float, kind: str = "USER", status: str = "AVAILABLE",
             name: str | None = None) -> dict:
    return {
        "TableName": table, "TableArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}",
        "BackupArn": _arn(table, n), "BackupName": name or f"{table}-b{n}",
        "BackupCreationDateTime": NOW - timedelta(days=days_old), "BackupStatus": status, "BackupType": kind,
        "BackupSizeBytes": 1024 * n,
    }


@contextmanager
def _stubbed():
    """The Stubber on the connection's client, every request checked against the input shape;
    yields (stubber, requests seen)."""
    client = dynamo.connection().client
    seen: list[tuple[str, dict]] = []

    def validate(params, model, **kwargs):
        validate_parameters(params, model.input_shape)  # raises ParamValidationError
        seen.append((model.name, dict(params)))

    client.meta.events.register("before-parameter-build.dynamodb.*", validate, unique_id="test-backup-validate")
    try:
        with Stubber(client) as stubber:
            yield stubber, seen
            stubber.assert_no_pending_responses()
    finally:
        client.meta.events.unregister("before-parameter-build.dynamodb.*", unique_id="test-backup-validate")


def _run(*args) -> str:
    out = StringIO()
    call_command("dynamodb_backup", *args, stdout=out, stderr=out)
    return out.getvalue()


def _details(table: str, name: str, n: int = 9) -> dict:
    return {"BackupDetails": {"BackupArn": _arn(table, n), "BackupName": name, "BackupStatus": "CREATING",
                              "BackupType": "USER", "BackupCreationDateTime": NOW, "BackupSizeBytes": 0}}


# --- create ---------------------------------------------------------------------------------------

def test_create_names_the_backup_after_the_table_and_the_utc_time(ddb):
    with _stubbed() as (stubber, seen):
        stubber.add_response("create_backup", _details(ddb, "nightly"), {"TableName": ddb, "BackupName": ANY})
        backup = backup_create()
    (operation, request), = seen
    assert operation == "CreateBackup" and request["TableName"] == ddb
    assert re.fullmatch(rf"{ddb}-\d{{8}}T\d{{6}}Z", request["BackupName"])
    assert backup.status == "CREATING" and backup.table_name == ddb and backup.created_at == NOW


def test_create_with_a_name_sends_exactly_it(ddb):
    with _stubbed() as (stubber, _):
        stubber.add_response("create_backup", _details(ddb, "before-migration-42"),
                             {"TableName": ddb, "BackupName": "before-migration-42"})
        out = _run("create", "--name", "before-migration-42")
    assert f"backup before-migration-42 of {ddb}: CREATING" in out and _arn(ddb, 9) in out


@pytest.mark.parametrize("name", ["ab", "has space", "slash/ed", "x" * 256])
def test_a_name_createbackup_would_refuse_is_refused_before_any_call(ddb, name):
    with _stubbed():  # nothing queued: any call would fail with UnStubbedResponseError
        with pytest.raises(CommandError, match="3-255 characters"):
            _run("create", "--name", name)


def test_a_long_table_name_still_gives_a_valid_default_name(ddb, settings):
    from sessions_app.services.backups import backup_default_name

    name = backup_default_name(table_name="t" * 255, now=NOW)
    assert len(name) == 255 and name.endswith("-20260301T040000Z")


def test_throttling_is_the_store_being_away_which_the_beat_task_retries(ddb):
    with _stubbed() as (stubber, _):
        stubber.add_client_error("create_backup", service_error_code="LimitExceededException",
                                 service_message="too many concurrent control plane operations")
        with pytest.raises(StoreUnavailable, match="LimitExceededException"):
            backup_create(name="nightly")


# --- list -----------------------------------------------------------------------------------------

def test_list_follows_every_page_and_shows_newest_first(ddb):
    page1 = {"BackupSummaries": [_summary(ddb, 1, days_old=3), _summary(ddb, 2, days_old=1)],
             "LastEvaluatedBackupArn": _arn(ddb, 2)}
    page2 = {"BackupSummaries": [_summary(ddb, 3, days_old=2, kind="AWS_BACKUP")]}
    with _stubbed() as (stubber, seen):
        stubber.add_response("list_backups", page1, {"TableName": ddb, "BackupType": "ALL"})
        stubber.add_response("list_backups", page2,
                             {"TableName": ddb, "BackupType": "ALL", "ExclusiveStartBackupArn": _arn(ddb, 2)})
        out = _run("list")
    assert [op for op, _ in seen] == ["ListBackups", "ListBackups"]
    lines = [line for line in out.splitlines() if "arn:aws:dynamodb" in line]
    assert [line.rsplit("/", 1)[-1] for line in lines] == [_arn(ddb, n).rsplit("/", 1)[-1] for n in (2, 3, 1)]
    assert out.startswith(f"3 backup(s) of {ddb}") and "AWS_BACKUP" in lines[1]


# --- prune ----------------------------------------------------------------------------------------

def _old_and_foreign(table: str) -> dict:
    """Every backup here is 40+ days old: only 1 and 2 may go; 3 is the newest available USER
    backup; 4 and 5 are not USER backups; 6 is still being created."""
    return {"BackupSummaries": [
        _summary(table, 1, days_old=60), _summary(table, 2, days_old=50), _summary(table, 3, days_old=40),
        _summary(table, 4, days_old=70, kind="SYSTEM"), _summary(table, 5, days_old=70, kind="AWS_BACKUP"),
        _summary(table, 6, days_old=45, status="CREATING"),
    ]}


def test_prune_deletes_old_user_backups_but_keeps_the_newest_and_the_others(ddb):
    with _stubbed() as (stubber, seen):
        stubber.add_response("list_backups", _old_and_foreign(ddb), {"TableName": ddb, "BackupType": "ALL"})
        for n in (2, 1):  # newest first, as listed
            stubber.add_response("delete_backup", {}, {"BackupArn": _arn(ddb, n)})
        report = backup_prune(older_than_days=35, now=NOW)
    assert [b.arn for b in report.deleted] == [_arn(ddb, 2), _arn(ddb, 1)]
    assert report.kept_newest.arn == _arn(ddb, 3)
    assert {b.arn for b in report.not_ours} == {_arn(ddb, 4), _arn(ddb, 5)}
    assert [b.arn for b in report.not_available] == [_arn(ddb, 6)]
    assert [request["BackupArn"] for op, request in seen if op == "DeleteBackup"] == [_arn(ddb, 2), _arn(ddb, 1)]


def test_a_lone_old_backup_is_kept_however_old(ddb):
    with _stubbed() as (stubber, _):
        stubber.add_response("list_backups", {"BackupSummaries": [_summary(ddb, 1, days_old=400)]})
        report = backup_prune(older_than_days=1, now=NOW)
    assert report.deleted == [] and report.kept_newest.arn == _arn(ddb, 1)


def test_with_a_young_backup_every_old_one_goes_and_the_young_ones_stay(ddb):
    listing = {"BackupSummaries": [_summary(ddb, 1, days_old=40), _summary(ddb, 2, days_old=3),
                                   _summary(ddb, 3, days_old=1)]}
    with _stubbed() as (stubber, _):
        stubber.add_response("list_backups", listing)
        stubber.add_response("delete_backup", {}, {"BackupArn": _arn(ddb, 1)})
        report = backup_prune(older_than_days=35, now=NOW)
    assert [b.arn for b in report.deleted] == [_arn(ddb, 1)]
    assert report.kept_newest.arn == _arn(ddb, 3) and [b.arn for b in report.not_due] == [_arn(ddb, 2)]


def test_dry_run_says_what_would_go_and_sends_no_delete(ddb):
    with _stubbed() as (stubber, seen):
        stubber.add_response("list_backups", _old_and_foreign(ddb), {"TableName": ddb, "BackupType": "ALL"})
        out = _run("prune", "--older-than-days", "35", "--dry-run")
    assert [op for op, _ in seen] == ["ListBackups"]  # a DeleteBackup would also be UnStubbed
    assert "dry run, nothing is deleted" in out
    assert out.count("would delete: ") == 2 and f"{ddb}-b1" in out and f"{ddb}-b2" in out
    assert f"kept (newest): " in out and "would delete 2; kept 0 younger, 1 not available, 2 not USER backups" in out


def test_prune_defaults_to_the_retention_setting(ddb, settings):
    settings.DYNAMODB_BACKUP_RETENTION_DAYS = 7
    now = datetime.now(timezone.utc)
    listing = {"BackupSummaries": [dict(_summary(ddb, 1, days_old=0), BackupCreationDateTime=now - timedelta(days=8)),
                                   dict(_summary(ddb, 2, days_old=0), BackupCreationDateTime=now - timedelta(days=6)),
                                   dict(_summary(ddb, 3, days_old=0), BackupCreationDateTime=now - timedelta(hours=1))]}
    with _stubbed() as (stubber, _):
        stubber.add_response("list_backups", listing)
        stubber.add_response("delete_backup", {}, {"BackupArn": _arn(ddb, 1)})
        out = _run("prune")
    assert "(7 days)" in out and "deleted 1; kept 1 younger" in out


def test_a_backup_gone_meanwhile_counts_as_deleted_and_one_in_use_is_left_for_next_time(ddb):
    listing = {"BackupSummaries": [_summary(ddb, 1, days_old=90), _summary(ddb, 2, days_old=80),
                                   _summary(ddb, 3, days_old=1)]}
    with _stubbed() as (stubber, _):
        stubber.add_response("list_backups", listing)
        stubber.add_client_error("delete_backup", service_error_code="BackupInUseException",
                                 expected_params={"BackupArn": _arn(ddb, 2)})
        stubber.add_client_error("delete_backup", service_error_code="BackupNotFoundException",
                                 expected_params={"BackupArn": _arn(ddb, 1)})
        out = _run("prune", "--older-than-days", "35")
    assert "not deleted (BackupInUseException)" in out and "deleted 1;" in out and "1 refused" in out


# --- the beat task --------------------------------------------------------------------------------

def test_the_beat_task_backs_up_then_prunes(ddb, settings):
    settings.DYNAMODB_BACKUP_INTERVAL_HOURS, settings.DYNAMODB_BACKUP_RETENTION_DAYS = 24, 35
    listing = {"BackupSummaries": [_summary(ddb, 1, days_old=50), _summary(ddb, 2, days_old=2)]}
    with _stubbed() as (stubber, seen):
        stubber.add_response("list_backups", listing)  # is there a recent one?
        stubber.add_response("create_backup", _details(ddb, "nightly"), {"TableName": ddb, "BackupName": ANY})
        stubber.add_response("list_backups", listing)  # the prune's own listing
        stubber.add_response("delete_backup", {}, {"BackupArn": _arn(ddb, 1)})
        result = dynamodb_backup_scheduled()
    assert [op for op, _ in seen] == ["ListBackups", "CreateBackup", "ListBackups", "DeleteBackup"]
    assert result == {"created": _arn(ddb, 9), "recent": None, "pruned": [_arn(ddb, 1)], "refused": []}


def test_a_second_run_within_half_an_interval_makes_no_second_backup(ddb, settings):
    listing = {"BackupSummaries": [_summary(ddb, 1, days_old=0.1, status="CREATING")]}
    with _stubbed() as (stubber, seen):
        stubber.add_response("list_backups", listing)
        stubber.add_response("list_backups", listing)
        report = backup_scheduled(interval_hours=24, retention_days=35, now=NOW)
    assert report.created is None and report.recent.arn == _arn(ddb, 1)
    assert [op for op, _ in seen] == ["ListBackups", "ListBackups"]
