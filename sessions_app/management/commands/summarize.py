"""(Re)summarise one session, a customer's sessions, or a day's sessions.

    manage.py summarize --session <id> [--sync]
    manage.py summarize --customer <id> [--days 30] [--sync]
    manage.py summarize --day 2026-11-22 [--sync]

By default each session is enqueued (a worker does the work); ``--sync`` summarises in this
process and reports each outcome. Either way the write is conditional: a session whose summary
already covers its last turn is left as it is. Sessions are enumerated with
``selectors.session_list`` (index Queries), never a Scan.
"""

from __future__ import annotations

from datetime import date, timedelta

from django.core.management.base import BaseCommand, CommandError

from sessions_app.exceptions import MangaAssistError
from sessions_app.selectors.listing import session_list
from sessions_app.clock import utcnow
from sessions_app.services.summaries import summary_generate, summary_request


class Command(BaseCommand):
    help = "Summarise one session, a customer's sessions, or a day's sessions (enqueue, or --sync)."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--session", help="one session id")
        which.add_argument("--customer", help="every session of this customer (see --days)")
        which.add_argument("--day", type=date.fromisoformat, help="every session started on this UTC day (YYYY-MM-DD)")
        parser.add_argument("--days", type=int, default=30, help="with --customer: how many days back (default 30)")
        parser.add_argument("--sync", action="store_true", help="summarise here instead of enqueueing")

    def handle(self, *args, session=None, customer=None, day=None, days=30, sync=False, **options):
        ids = [session] if session else list(self._enumerate(customer=customer, day=day, days=days))
        total = len(ids)
        self.stdout.write(f"{total} session(s) to {'summarise' if sync else 'enqueue'}")
        counts: dict[str, int] = {}
        for n, session_id in enumerate(ids, 1):
            if sync:
                try:
                    outcome = summary_generate(session_id=session_id)
                    status, detail = outcome.status, f"through turn {outcome.through_seq}"
                except MangaAssistError as exc:
                    status, detail = "error", f"{exc.code}: {exc.message}"
            else:
                task_id = summary_request(session_id=session_id, reason="command")
                status, detail = ("queued", f"task {task_id}") if task_id else ("not-queued", "broker unavailable")
            counts[status] = counts.get(status, 0) + 1
            self.stdout.write(f"[{n}/{total}] {session_id}: {status} ({detail})")
        summary = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())) or "nothing to do"
        self.stdout.write(self.style.SUCCESS(f"done — {summary}"))
        if counts.get("error") or counts.get("not-queued"):
            raise CommandError(f"{counts.get('error', 0) + counts.get('not-queued', 0)} session(s) failed")

    def _enumerate(self, *, customer, day, days):
        if customer:
            today = utcnow().date()
            kwargs = {"customer_id": customer, "day_from": today - timedelta(days=max(1, days) - 1), "day_to": today}
        else:
            kwargs = {"day_from": day, "day_to": day}
        cursor = None
        while True:
            try:
                page = session_list(limit=200, cursor=cursor, **kwargs)
            except MangaAssistError as exc:
                raise CommandError(exc.message) from exc
            for meta in page.sessions:
                yield meta.session_id
            if not page.cursor:
                return
            cursor = page.cursor
