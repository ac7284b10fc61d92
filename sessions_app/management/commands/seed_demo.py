import sys

from django.core.management.base import BaseCommand

from sessions_app import selectors
from sessions_app.demo import demo_sessions
from sessions_app.services.bulk import sessions_bulk_load
from sessions_app.clock import utcnow
from sessions_app.search import search_engine
from sessions_app.services.search_index import search_reindex


class Command(BaseCommand):
    help = "Load demo manga-shop sessions (English and Japanese) — only into an empty table unless --force."

    def add_arguments(self, parser):
        parser.add_argument("--sessions", type=int, default=260)
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--force", action="store_true", help="seed even if the table has sessions")

    def handle(self, *args, sessions, threads, force, **options):
        if not force and selectors.session_list(limit=1).sessions:
            self.stdout.write("demo data: table already has sessions, skipping")
            if search_engine().state().sessions == 0:  # a new index beside an old table (search enabled later)
                self._reindex(day_from=None)
            return
        plan = demo_sessions(count=sessions, now=utcnow())
        total_turns = sum(len(s.turns) for s in plan)

        def progress(done, turns):
            filled = 30 * done // len(plan)
            sys.stdout.write(f"\r  seeding [{'#' * filled}{'.' * (30 - filled)}] {done}/{len(plan)} sessions, {turns}/{total_turns} turns")
            sys.stdout.flush()

        done, turns = sessions_bulk_load(specs=plan, threads=threads, progress=progress)
        sys.stdout.write("\n")
        self.stdout.write(self.style.SUCCESS(f"demo data: {done} sessions, {turns} turns"))
        # Searchable at once: the change feed would index them too, but only as fast as it reads.
        self._reindex(day_from=min(s.started_at for s in plan).date() if plan else None)

    def _reindex(self, *, day_from):
        progress = search_reindex(day_from=day_from, resume=False)
        self.stdout.write(f"search index: {progress.sessions} sessions, {progress.docs} documents")
