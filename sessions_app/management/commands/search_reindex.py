import signal
import sys
import time
from datetime import date

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from sessions_app.search import search_engine
from sessions_app.services.search_index import search_reindex, search_reindex_saved


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a day (YYYY-MM-DD)") from exc


class Command(BaseCommand):
    help = ("Rebuild the search index from DynamoDB, walking the by_day index newest day first (no Scan). "
            "Needed after enabling search on an existing table, or to repair the index. The position is saved "
            "after every page: run it again with the same days to resume; Ctrl-C stops cleanly between pages. "
            "Documents are upserted, so rebuilding an index that is in use is safe; the change feed goes on meanwhile.")

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="day_from", type=_day,
                            help="oldest start day to index (default: SESSION_TTL_DAYS before --to)")
        parser.add_argument("--to", dest="day_to", type=_day, help="newest start day to index (default: today, UTC)")
        parser.add_argument("--restart", action="store_true", help="ignore a saved position and start from --to")
        parser.add_argument("--status", action="store_true", help="print the index state and any saved position, then exit")

    def handle(self, *args, day_from=None, day_to=None, restart=False, status=False, **options):
        engine = search_engine()
        if status:
            state, saved = engine.state(), search_reindex_saved()
            newest = state.newest_change_at.isoformat() if state.newest_change_at else "none yet"
            self.stdout.write(f"engine {engine.name}: {state.sessions} sessions indexed, newest change indexed {newest}")
            if saved:
                self.stdout.write(f"interrupted rebuild of {saved.day_from}..{saved.day_to}: at {saved.day} shard "
                                  f"{saved.shard}, {saved.sessions} sessions / {saved.docs} documents so far")
            return
        if day_from and day_to and day_from > day_to:
            raise CommandError("--from must not be after --to")
        saved = None if restart else search_reindex_saved()
        stopping = []

        def stop(signum, frame):
            self.stdout.write(f"\nstopping ({signal.Signals(signum).name}) after this page; run again to resume")
            stopping.append(signum)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        started = time.monotonic()
        shards = settings.DYNAMODB_DAY_SHARDS

        def on_page(progress):
            rate = progress.docs / max(time.monotonic() - started, 1e-6)
            sys.stdout.write(f"\r  {progress.day} shard {min(progress.shard, shards - 1) + 1}/{shards}: "
                             f"{progress.sessions} sessions, {progress.docs} documents ({rate:.0f}/s)")
            sys.stdout.flush()

        progress = search_reindex(day_from=day_from, day_to=day_to, resume=not restart, on_page=on_page,
                                  stop=lambda: bool(stopping))
        if saved and (saved.day_from, saved.day_to) == (progress.day_from, progress.day_to):
            self.stdout.write(f"resumed a rebuild of {saved.day_from}..{saved.day_to} at {saved.day}")
        sys.stdout.write("\n")
        if stopping:
            self.stdout.write(f"stopped at {progress.day}: {progress.sessions} sessions, {progress.docs} documents; "
                              "the position is saved")
            return
        self.stdout.write(self.style.SUCCESS(
            f"indexed {progress.sessions} sessions, {progress.docs} documents "
            f"({progress.day_from}..{progress.day_to}) in {time.monotonic() - started:.1f} s"))
