from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from sessions_app.models import SessionMeta
from sessions_app.services import BACKFILLED_INDEXES, session_keys_backfill, table_ensure
from sessions_app.services.table import TableConfigError, table_ensure_plan


class Command(BaseCommand):
    help = ("Make the DynamoDB table what the code and the settings say: create it, or add what is missing "
            "(indexes, TTL, the stream) and apply its configuration (capacity, auto scaling, PITR, deletion "
            "protection, encryption, table class, tags, replicas); write the new indexes' keys on existing "
            "sessions. Prints the plan first. Safe to run again.")

    def add_arguments(self, parser):
        parser.add_argument("--table", help="table name (default: settings.DYNAMODB_TABLE)")
        parser.add_argument("--plan", action="store_true", help="print the calls it would make, make none")
        parser.add_argument("--backfill", action="store_true",
                            help="write missing index keys on existing sessions even if no index was added "
                                 "(e.g. to finish a backfill that was interrupted)")

    def handle(self, *args, table=None, plan=False, backfill=False, **options):
        name = table or SessionMeta.Meta.table_name
        try:
            planned = table_ensure_plan(table_name=name)
        except TableConfigError as exc:
            raise CommandError(str(exc)) from exc
        for blocked in planned.blocked:
            self.stderr.write(self.style.WARNING(f"  {blocked.setting}: {blocked.message}"))
        if planned.calls:
            self.stdout.write(f"table {name}: plan, {len(planned.calls)} call(s)")
            for line in planned.lines():
                self.stdout.write(f"  {line}")
        if plan:
            if not planned.calls:
                self.stdout.write(f"table {name}: up to date, nothing to change")
            return

        try:
            report = table_ensure(table_name=table, plan=planned, progress=lambda msg: self.stdout.write(f"  {msg}"))
        except TableConfigError as exc:
            raise CommandError(str(exc)) from exc
        if report.changed:
            parts = ["created" if report.created else "updated"]
            if report.indexes_added:
                parts.append("indexes added: " + ", ".join(report.indexes_added))
            if report.ttl_enabled:
                parts.append("TTL enabled")
            if report.stream_enabled:
                parts.append("stream enabled (NEW_AND_OLD_IMAGES)")
            if report.lease_table_created:
                parts.append("stream lease table created")
            if report.configured:
                parts.append("configured: " + ", ".join(report.configured))
            self.stdout.write(self.style.SUCCESS(f"table {report.table_name}: " + "; ".join(parts)))
        else:
            self.stdout.write(f"table {report.table_name}: up to date, nothing changed")
        if report.stream_arn:
            self.stdout.write(f"  stream: {report.stream_arn}")
        # A new index on a table that already holds sessions starts empty for them.
        if backfill or (not report.created and set(report.indexes_added) & set(BACKFILLED_INDEXES)):
            with override_settings(DYNAMODB_TABLE=report.table_name):
                done = session_keys_backfill(progress=lambda day, r: self.stdout.write(
                    f"  backfill: back to {day}, {r.sessions_updated} of {r.sessions_seen} sessions updated")
                    if r.days % 30 == 0 else None)
            self.stdout.write(self.style.SUCCESS(
                f"index keys backfilled: {done.sessions_updated} of {done.sessions_seen} sessions over {done.days} days"))
