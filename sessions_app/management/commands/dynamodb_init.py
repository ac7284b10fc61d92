from django.core.management.base import BaseCommand

from sessions_app.services import table_ensure


class Command(BaseCommand):
    help = "Create the DynamoDB table, or add what is missing (indexes, TTL). Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--table", help="table name (default: settings.DYNAMODB_TABLE)")

    def handle(self, *args, table=None, **options):
        report = table_ensure(table_name=table, progress=lambda msg: self.stdout.write(f"  {msg}"))
        if report.changed:
            parts = ["created" if report.created else "updated"]
            if report.indexes_added:
                parts.append("indexes added: " + ", ".join(report.indexes_added))
            if report.ttl_enabled:
                parts.append("TTL enabled")
            self.stdout.write(self.style.SUCCESS(f"table {report.table_name}: " + "; ".join(parts)))
        else:
            self.stdout.write(f"table {report.table_name}: up to date, nothing changed")
