"""On-demand backups of the session table (``DYNAMODB_TABLE``).

    manage.py dynamodb_backup create [--name NAME]
    manage.py dynamodb_backup list
    manage.py dynamodb_backup prune [--older-than-days N] [--dry-run]

``prune`` deletes this table's USER backups older than N days (default
``DYNAMODB_BACKUP_RETENTION_DAYS``) that are AVAILABLE, never the newest one, never a SYSTEM or
AWS Backup one. Restoring is a new table: README §Restore, step by step.
"""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions_app.exceptions import MangaAssistError
from sessions_app.services.backups import Backup, backup_create, backup_list, backup_prune


def _size(value: int | None) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return "-"  # pragma: no cover


def _line(backup: Backup) -> str:
    return (f"{backup.created_at:%Y-%m-%d %H:%M:%SZ}  {backup.status:<9}  {backup.type:<10}  "
            f"{_size(backup.size_bytes):>9}  {backup.name}  {backup.arn}")


class Command(BaseCommand):
    help = ("On-demand backups of the session table: create one, list them, prune the old ones "
            "(this table's USER backups only; the newest is always kept).")

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", metavar="{create,list,prune}", required=True)
        create = actions.add_parser("create", help="start a backup (it is AVAILABLE a few minutes later)")
        create.add_argument("--name", help="the backup's name (default: <table>-<UTC timestamp>)")
        actions.add_parser("list", help="every backup of the table, newest first")
        prune = actions.add_parser("prune", help="delete USER backups older than --older-than-days")
        prune.add_argument("--older-than-days", type=int, default=None,
                           help=f"default DYNAMODB_BACKUP_RETENTION_DAYS ({settings.DYNAMODB_BACKUP_RETENTION_DAYS})")
        prune.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")

    def handle(self, *args, action, **options):
        try:
            getattr(self, f"_{action}")(**options)
        except MangaAssistError as exc:
            raise CommandError(exc.message) from exc

    def _create(self, *, name=None, **options):
        backup = backup_create(name=name)
        self.stdout.write(self.style.SUCCESS(f"backup {backup.name} of {settings.DYNAMODB_TABLE}: {backup.status}"))
        self.stdout.write(f"  {backup.arn}")

    def _list(self, **options):
        backups = backup_list()
        self.stdout.write(f"{len(backups)} backup(s) of {settings.DYNAMODB_TABLE}")
        for backup in backups:
            self.stdout.write(f"  {_line(backup)}")

    def _prune(self, *, older_than_days=None, dry_run=False, **options):
        days = settings.DYNAMODB_BACKUP_RETENTION_DAYS if older_than_days is None else older_than_days
        report = backup_prune(older_than_days=days, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"backups of {report.table_name} created before {report.cutoff:%Y-%m-%d %H:%M:%SZ} "
                          f"({days} days){' — dry run, nothing is deleted' if dry_run else ''}")
        for backup in report.deleted:
            self.stdout.write(f"  {verb}: {_line(backup)}")
        if report.kept_newest is not None:
            self.stdout.write(f"  kept (newest): {_line(report.kept_newest)}")
        for backup, why in report.failed:
            self.stderr.write(self.style.WARNING(f"  not deleted ({why}): {_line(backup)}"))
        self.stdout.write(f"{verb} {len(report.deleted)}; kept {len(report.not_due)} younger, "
                          f"{len(report.not_available)} not available, {len(report.not_ours)} not USER backups"
                          + (f"; {len(report.failed)} refused" if report.failed else ""))
