"""Celery tasks. Each takes ids, calls one service, and is idempotent (docs/architecture.md §Celery).

``shared_task``: the app stays in the project package (``mangaassist.celery``), which imports
the apps, not the other way round; services publish through ``sessions_app.jobs``.

Delivery is at-least-once (``acks_late`` + ``reject_on_worker_lost``, see mangaassist/celery.py);
the summary service's conditional write makes a second delivery write nothing new.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings

from .exceptions import SessionNotFound, StoreUnavailable
from .services import alerts, backups, handoff, idle_close, search_index, summaries, webhooks
from .summarizers import SummarizerUnavailable

log = logging.getLogger(__name__)

# Worth retrying: throttling/unreachable DynamoDB or DAX, a throttled or timed-out summarizer.
TRANSIENT = (StoreUnavailable, SummarizerUnavailable)


class SummaryTask(Task):
    """Records retries and the final failure on the session's META, where the console reads them."""

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        summaries.summary_mark_attempt(session_id=_session_id(args, kwargs), task_id=task_id,
                                       retries=self.request.retries + 1, error=f"{type(exc).__name__}: {exc}", failed=False)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        summaries.summary_mark_attempt(session_id=_session_id(args, kwargs), task_id=task_id,
                                       retries=self.request.retries, error=f"{type(exc).__name__}: {exc}", failed=True)


def _session_id(args, kwargs) -> str:
    return kwargs.get("session_id") or args[0]


@shared_task(
    bind=True,
    base=SummaryTask,
    name="sessions_app.summary_generate",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=TRANSIENT,
    retry_backoff=True,  # 1 s, 2 s, 4 s, ... with full jitter, capped below
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=settings.SUMMARY_MAX_RETRIES,
    soft_time_limit=settings.SUMMARY_SOFT_TIME_LIMIT,
    time_limit=settings.SUMMARY_TIME_LIMIT,
)
def summary_generate(self, session_id: str) -> dict:
    """Summarise one session up to its last turn (see services.summaries.summary_generate)."""
    try:
        outcome = summaries.summary_generate(session_id=session_id, task_id=self.request.id)
    except SessionNotFound:
        log.info("summary of %s skipped: the session no longer exists", session_id)
        return {"status": "missing", "session_id": session_id}
    except SoftTimeLimitExceeded:
        # A summary that outgrew its time budget is retried by the sweep, not in a tight loop.
        log.warning("summary of %s exceeded its soft time limit", session_id)
        raise
    return {"status": outcome.status, "session_id": session_id, "through_seq": outcome.through_seq,
            "rounds": outcome.rounds}


def sweep_task(name: str):
    """A beat sweep: idempotent (it re-reads what is due), retried a few times while DynamoDB is
    away, bounded in time; the next beat tick runs it again anyway."""
    return shared_task(name=name, acks_late=True, reject_on_worker_lost=True, autoretry_for=(StoreUnavailable,),
                       retry_backoff=True, retry_jitter=True, max_retries=3, soft_time_limit=120, time_limit=150)


@sweep_task("sessions_app.summary_sweep")
def summary_sweep() -> dict:
    """Beat: request summaries for idle sessions their summary does not cover."""
    report = summaries.summary_sweep()
    if report.requested or report.not_queued:
        log.info("summary sweep: %d requested, %d pending, %d cleared, %d not queued",
                 len(report.requested), len(report.pending), len(report.cleared), len(report.not_queued))
    return {"requested": len(report.requested), "pending": len(report.pending), "cleared": len(report.cleared),
            "not_queued": len(report.not_queued)}


@sweep_task("sessions_app.handoff_lapse_sweep")
def handoff_lapse_sweep() -> dict:
    """Beat: staff holds idle for HANDOFF_IDLE_MINUTES go back to the "needs a human" queue."""
    lapsed = handoff.handoff_lapse_idle()
    if lapsed:
        log.info("hand-off sweep: %d idle holds returned to the queue", lapsed)
    return {"lapsed": lapsed}


@sweep_task("sessions_app.sessions_idle_close")
def sessions_idle_close() -> dict:
    """Beat: close the open sessions idle for SESSION_IDLE_CLOSE_MINUTES (reason idle, audited;
    a session a staff member owns is left to them). Idempotent: what it closed has left the
    index it reads, and each close is conditional on the session being as idle as it was read."""
    report = idle_close.sessions_idle_close()
    if report.closed or report.moved:
        log.info("idle close: %d closed, %d written meanwhile, %d owned by staff", len(report.closed),
                 len(report.moved), len(report.owned))
    return {"closed": len(report.closed), "moved": len(report.moved), "owned": len(report.owned), "more": report.more}


@sweep_task("sessions_app.search_retention_sweep")
def search_retention_sweep() -> dict:
    """Beat (daily): drop the search index's months that hold only expired sessions."""
    dropped = search_index.search_retention()
    if dropped:
        log.info("search retention: dropped %s", ", ".join(dropped))
    return {"dropped": dropped}


@sweep_task("sessions_app.alerts_evaluate")
def alerts_evaluate() -> dict:
    """Beat: evaluate the alert rules now (see services.alerts.evaluate). Idempotent: a second run
    finds the same windows, so no transition, and posts only what is still undelivered (a failed
    post is tried again by the next tick's run)."""
    transitions = alerts.evaluate()
    return {"fired": [t.rule for t in transitions if t.kind == "fired"],
            "resolved": [t.rule for t in transitions if t.kind == "resolved"],
            "undelivered": [t.rule for t in transitions if not t.delivered]}


@sweep_task("sessions_app.dynamodb_backup_scheduled")
def dynamodb_backup_scheduled() -> dict:
    """Beat (every DYNAMODB_BACKUP_INTERVAL_HOURS, when set): an on-demand backup of the table,
    then the prune to DYNAMODB_BACKUP_RETENTION_DAYS (see services.backups.backup_scheduled:
    a second run within half an interval makes no second backup)."""
    report = backups.backup_scheduled()
    pruned = report.pruned
    if report.created is not None or pruned.deleted or pruned.failed:
        log.info("scheduled backup: %s; %d pruned, %d refused", report.created.name if report.created else "none (recent)",
                 len(pruned.deleted), len(pruned.failed))
    return {"created": report.created.arn if report.created else None,
            "recent": report.recent.arn if report.recent else None,
            "pruned": [b.arn for b in pruned.deleted], "refused": [b.arn for b, _ in pruned.failed]}


@shared_task(
    bind=True,
    name=webhooks.TASK_NAME,
    acks_late=True,
    reject_on_worker_lost=True,
    # Attempts are counted on the turn (delivery_attempts against BOT_WEBHOOK_MAX_ATTEMPTS, read
    # when each attempt runs), not by Celery: every retry below passes max_retries=None.
    max_retries=None,
    soft_time_limit=60,
    time_limit=90,
)
def webhook_deliver(self, session_id: str, seq: int) -> dict:
    """Deliver one staff reply to the bot webhook (see services.webhooks.webhook_deliver): one
    attempt per run; a failed attempt with attempts left is retried after its backoff."""
    try:
        outcome = webhooks.webhook_deliver(session_id=session_id, seq=seq)
    except StoreUnavailable as exc:
        # The table is away: not an attempt (nothing was sent, or the result is re-read next run).
        delay = webhooks.backoff_seconds(min(self.request.retries + 1, 6), base=1.0)
        log.warning("webhook delivery of %s turn %s: the store is unavailable, again in %.1f s", session_id, seq, delay)
        raise self.retry(exc=exc, countdown=delay, max_retries=None)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in, max_retries=None)
    return {"status": outcome.status, "session_id": session_id, "seq": int(seq), "attempt": outcome.attempt}
