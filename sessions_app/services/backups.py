"""On-demand backups of the session table: create, list, prune (``manage.py dynamodb_backup``,
and the beat task ``sessions_app.dynamodb_backup_scheduled`` when
``DYNAMODB_BACKUP_INTERVAL_HOURS`` is set).

What a backup is for, next to point-in-time recovery (``DYNAMODB_PITR``): PITR restores any
second of the last 35 days; an on-demand backup is kept until it is deleted, so it outlives
those 35 days, a PITR setting switched off, and the table itself. Either way a restore makes a
*new* table (README §Restore, step by step).

Only this table's ``USER`` backups (the ones CreateBackup makes) are ever pruned: ``SYSTEM``
backups (DynamoDB keeps one of a deleted table when asked to) and ``AWS_BACKUP`` ones (AWS
Backup's plans, with their own retention) belong to someone else. The newest available backup
is never pruned, however old: a retention period is a promise to keep history, not to end up
with none.

DynamoDB Local implements none of these operations; tests stub them (botocore's Stubber).
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Backup-and-Restore.html
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings

from .. import dynamo
from ..clock import utcnow
from ..exceptions import InvalidInput, StoreUnavailable

log = logging.getLogger(__name__)

USER = "USER"  # made by CreateBackup (this module, the console, the CLI)
AVAILABLE = "AVAILABLE"
# CreateBackup's rules for a backup name.
_NAME = re.compile(r"^[A-Za-z0-9_.\-]{3,255}$")
_STAMP = "%Y%m%dT%H%M%SZ"
# "Try again later", not "this request is wrong": the control plane allows a limited number of
# concurrent table operations (LimitExceededException), and a table being updated refuses a
# backup for a moment (TableInUseException).
_RETRY_LATER = dynamo.STREAMS_THROTTLED | {"TableInUseException"}


@dataclass(frozen=True)
class Backup:
    arn: str
    name: str
    table_name: str
    status: str  # CREATING, AVAILABLE, DELETED
    type: str  # USER, SYSTEM, AWS_BACKUP
    created_at: datetime  # UTC
    size_bytes: int | None = None  # reported once the backup is AVAILABLE
    expires_at: datetime | None = None  # AWS Backup's retention; None for USER backups


@dataclass
class PruneReport:
    table_name: str
    cutoff: datetime  # backups created before this are due
    dry_run: bool
    deleted: list[Backup] = field(default_factory=list)  # (dry run: would be) deleted
    kept_newest: Backup | None = None  # the newest available USER backup: never pruned
    not_due: list[Backup] = field(default_factory=list)  # USER, created at or after the cutoff
    not_ours: list[Backup] = field(default_factory=list)  # SYSTEM or AWS_BACKUP: never touched
    not_available: list[Backup] = field(default_factory=list)  # CREATING (or already DELETED)
    failed: list[tuple[Backup, str]] = field(default_factory=list)  # DeleteBackup refused: why


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _backup_of(item: dict, table_name: str) -> Backup:
    """From a ListBackups summary or a CreateBackup/DescribeBackup detail (the latter names no
    table: it is the one the backup was asked of)."""
    expires = item.get("BackupExpiryDateTime")
    return Backup(
        arn=item["BackupArn"], name=item.get("BackupName", ""), table_name=item.get("TableName", table_name),
        status=item.get("BackupStatus", ""), type=item.get("BackupType", ""),
        created_at=_utc(item["BackupCreationDateTime"]),
        size_bytes=item.get("BackupSizeBytes"), expires_at=_utc(expires) if expires else None,
    )


def _call(operation: str, **request) -> dict:
    """One control-plane call on the table's connection, with the project's exception for "the
    store is away or busy" (the beat task retries on it)."""
    client = dynamo.connection().client
    try:
        return getattr(client, operation)(**request)
    except ClientError as exc:
        if dynamo.error_code(exc) in _RETRY_LATER:
            raise StoreUnavailable(f"DynamoDB {operation}: {dynamo.error_code(exc)}: {exc}") from exc
        raise
    except BotoCoreError as exc:
        raise StoreUnavailable(f"DynamoDB {operation} failed: {exc}") from exc


def backup_default_name(*, table_name: str | None = None, now: datetime | None = None) -> str:
    """``<table>-<UTC timestamp>``, e.g. ``mangaassist-sessions-20250301T040000Z`` (the table
    part shortened if the whole would pass CreateBackup's 255 characters)."""
    stamp = _utc(now or utcnow()).strftime(_STAMP)
    table = table_name or settings.DYNAMODB_TABLE
    return f"{table[: 255 - len(stamp) - 1]}-{stamp}"


def backup_create(*, name: str | None = None, table_name: str | None = None) -> Backup:
    """Start an on-demand backup of the table (CreateBackup). It is CREATING when this returns
    and AVAILABLE soon after, without affecting the table's performance or capacity. Raises
    ``InvalidInput`` for a name CreateBackup would refuse."""
    table = table_name or settings.DYNAMODB_TABLE
    name = name or backup_default_name(table_name=table)
    if not _NAME.match(name):
        raise InvalidInput("a backup name is 3-255 characters: letters, digits, '_', '-' and '.'", field="name")
    details = _call("create_backup", TableName=table, BackupName=name)["BackupDetails"]
    backup = _backup_of(details, table)
    log.info("backup %s of %s started: %s", backup.name, table, backup.arn)
    return backup


def backup_list(*, table_name: str | None = None) -> list[Backup]:
    """Every backup of the table, of every type (USER, SYSTEM, AWS_BACKUP), newest first,
    following ListBackups' pages."""
    table = table_name or settings.DYNAMODB_TABLE
    backups: list[Backup] = []
    start = None
    while True:
        request = {"TableName": table, "BackupType": "ALL"}
        if start:
            request["ExclusiveStartBackupArn"] = start
        page = _call("list_backups", **request)
        backups += [_backup_of(item, table) for item in page.get("BackupSummaries", [])]
        start = page.get("LastEvaluatedBackupArn")
        if not start:
            return sorted(backups, key=lambda b: (b.created_at, b.arn), reverse=True)


def backup_prune(*, older_than_days: int, dry_run: bool = False, table_name: str | None = None,
                 now: datetime | None = None) -> PruneReport:
    """Delete this table's USER backups created more than ``older_than_days`` ago that are
    AVAILABLE — except the newest available one, which is kept whatever its age. ``dry_run``:
    decide the same, delete nothing. A backup that is already gone counts as deleted; one
    DeleteBackup refuses (in use by a restore) is reported and left for the next run."""
    if older_than_days < 1:
        raise InvalidInput("older_than_days must be at least 1", field="older_than_days")
    table = table_name or settings.DYNAMODB_TABLE
    cutoff = _utc(now or utcnow()) - timedelta(days=older_than_days)
    report = PruneReport(table_name=table, cutoff=cutoff, dry_run=dry_run)
    backups = backup_list(table_name=table)
    ours = [b for b in backups if b.type == USER and b.table_name == table]
    report.not_ours.extend(b for b in backups if b not in ours)
    available = [b for b in ours if b.status == AVAILABLE]
    newest = report.kept_newest = max(available, key=lambda b: (b.created_at, b.arn), default=None)
    for backup in ours:
        if backup.status != AVAILABLE:
            report.not_available.append(backup)
        elif backup is newest:
            continue
        elif backup.created_at >= cutoff:
            report.not_due.append(backup)
        elif dry_run:
            report.deleted.append(backup)
        else:
            _delete(backup, report)
    return report


def _delete(backup: Backup, report: PruneReport) -> None:
    try:
        _call("delete_backup", BackupArn=backup.arn)
    except ClientError as exc:
        code = dynamo.error_code(exc)
        if code == "BackupNotFoundException":  # deleted meanwhile (another run, the console)
            report.deleted.append(backup)
            return
        if code == "BackupInUseException":  # a restore is reading it: the next run deletes it
            report.failed.append((backup, code))
            log.warning("backup %s not deleted: %s", backup.arn, code)
            return
        raise
    log.info("backup %s of %s deleted (created %s)", backup.name, backup.table_name, backup.created_at.isoformat())
    report.deleted.append(backup)


@dataclass(frozen=True)
class ScheduledReport:
    created: Backup | None  # None: a backup younger than half the interval exists already
    recent: Backup | None  # that backup, when one was found
    pruned: PruneReport


def backup_scheduled(*, interval_hours: int | None = None, retention_days: int | None = None,
                     now: datetime | None = None) -> ScheduledReport:
    """The beat task's run: a backup, then a prune to ``DYNAMODB_BACKUP_RETENTION_DAYS``.

    Idempotent per interval: when this table already has a USER backup (creating or available)
    younger than half of ``DYNAMODB_BACKUP_INTERVAL_HOURS``, no new one is made — a redelivered
    task, a retry after an answer was lost, or beat restarting (it runs an interval schedule once
    at start) would otherwise each add a backup."""
    interval_hours = settings.DYNAMODB_BACKUP_INTERVAL_HOURS if interval_hours is None else interval_hours
    retention_days = settings.DYNAMODB_BACKUP_RETENTION_DAYS if retention_days is None else retention_days
    now = _utc(now or utcnow())
    table = settings.DYNAMODB_TABLE
    since = now - timedelta(hours=max(interval_hours, 1) / 2)
    recent = next((b for b in backup_list(table_name=table)
                   if b.type == USER and b.table_name == table and b.status in (AVAILABLE, "CREATING")
                   and b.created_at >= since), None)
    created = None if recent else backup_create(name=backup_default_name(table_name=table, now=now), table_name=table)
    pruned = backup_prune(older_than_days=retention_days, table_name=table, now=now)
    return ScheduledReport(created=created, recent=recent, pruned=pruned)
