import sys
from concurrent.futures import ThreadPoolExecutor, as_completed

from django.core.management.base import BaseCommand

from sessions_app import selectors, services
from sessions_app.demo import demo_sessions
from sessions_app.services.common import utcnow


class Command(BaseCommand):
    help = "Load demo manga-shop sessions (English and Japanese) — only into an empty table unless --force."

    def add_arguments(self, parser):
        parser.add_argument("--sessions", type=int, default=260)
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument("--force", action="store_true", help="seed even if the table has sessions")

    def handle(self, *args, sessions, threads, force, **options):
        if not force and selectors.session_list(limit=1).sessions:
            self.stdout.write("demo data: table already has sessions, skipping")
            return
        plan = demo_sessions(count=sessions, now=utcnow())
        total_turns = sum(len(s.turns) for s in plan)
        done_turns = 0

        def load(demo):
            meta, _ = services.session_start(
                customer_id=demo.customer_id, channel=demo.channel, locale=demo.locale, tags=demo.tags,
                started_at=demo.started_at, status="handed_off" if demo.status == "handed_off" else "active",
            )
            for n, (role, text) in enumerate(demo.turns, start=1):
                services.turn_write(session_id=meta.session_id, role=role, text=text, client_msg_id=f"demo-{n}")
            if demo.status == "closed":
                services.session_close(session_id=meta.session_id)
            return len(demo.turns)

        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [pool.submit(load, demo) for demo in plan]
            for n, future in enumerate(as_completed(futures), start=1):
                done_turns += future.result()
                self._progress(n, len(plan), done_turns, total_turns)
        sys.stdout.write("\n")
        self.stdout.write(self.style.SUCCESS(f"demo data: {len(plan)} sessions, {total_turns} turns"))

    def _progress(self, n, total, turns, total_turns):
        width = 30
        filled = int(width * n / total)
        sys.stdout.write(f"\r  seeding [{'#' * filled}{'.' * (width - filled)}] {n}/{total} sessions, {turns}/{total_turns} turns")
        sys.stdout.flush()
