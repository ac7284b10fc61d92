"""Publishing background tasks: the one boundary between the services and the Celery broker.

Services name a task and its arguments; they never import the Celery application (that lives in
the project package ``mangaassist``, above every app). Settings name it instead (``TASK_APP``,
as ``ROOT_URLCONF`` names the URLs), so this module needs no import upwards. Not
``celery.current_app``: any ``Celery()`` created later in the process becomes "current" and
would silently receive our tasks.

Errors become :class:`~sessions_app.exceptions.QueueUnavailable`: kombu raises
``OperationalError``, redis-py ``ConnectionError``, the OS ``OSError``; callers decide what a
task that was not queued costs them.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from .exceptions import QueueUnavailable
from .observability import metrics


def task_publish(*, name: str, args: list, task_id: str) -> None:
    """Send task ``name`` with ``args`` under ``task_id`` to the broker, once.

    ``retry=False``: publishing happens inside a customer's request, and a broker that is down
    must cost one fast connection error (``CELERY_BROKER_CONNECTION_TIMEOUT``), not kombu's
    retry loop.
    """
    try:
        import_string(settings.TASK_APP).send_task(name, args=args, task_id=task_id, retry=False)
    except Exception as exc:  # the transport's own error classes vary by broker (see module doc)
        metrics.count(metrics.TASK_ENQUEUE_FAILURES, name)
        raise QueueUnavailable(f"could not publish {name}: {type(exc).__name__}: {exc}") from exc
