"""The Celery application. Configuration comes from Django settings (``CELERY_*``).

The broker is whatever ``CELERY_BROKER_URL`` names (Redis by default; ``amqp://`` for RabbitMQ
works by URL alone). Delivery semantics are at-least-once on purpose: tasks acknowledge after
they finish (``task_acks_late``) and a task whose worker process died is put back
(``task_reject_on_worker_lost``), so every task must be idempotent — the summary task is, by its
conditional write. See docs/architecture.md §Celery.
"""

import os

from celery import Celery
from celery.signals import worker_process_shutdown

from sessions_app.observability import metrics
from sessions_app.observability.logs import connect_celery_signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mangaassist.settings")

app = Celery("mangaassist")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.update(
    # At-least-once: ack after the task ran; a worker killed mid-task gets its message redelivered.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    # One message reserved per process: a long summary does not hold others hostage, and a crash
    # puts back one message, not a prefetched batch.
    worker_prefetch_multiplier=1,
    task_track_started=False,
    task_serializer="json",
    accept_content=["json"],
    result_serializer="json",
    # No result backend by default: state the console needs is stored on the session's META.
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    timezone="UTC",
)
app.autodiscover_tasks()
# The request id of the request that enqueued a task travels with it and is on the task's log
# lines (sessions_app/observability/logs.py); the worker logs through Django's LOGGING.
connect_celery_signals()


@worker_process_shutdown.connect
def _pool_process_gone(pid=None, **_kwargs):
    """A pool process is ending: its live gauges (a DAX breaker it had open) stop counting in the
    multiprocess totals (docs/operating.md §Metrics). Billiard's children leave with os._exit,
    which skips atexit, hence the signal."""
    metrics.mark_process_dead(pid or os.getpid())
