"""gunicorn settings the project needs whatever the command line says: ``-c python:mangaassist.gunicorn_conf``.

With ``PROMETHEUS_MULTIPROC_DIR`` set every worker writes its metrics to its own files there and
``/metrics`` adds them up. A worker that exits leaves its counters (they keep counting towards
the totals, as Prometheus expects of a counter) but its live gauges must stop counting — that is
prometheus-client's ``mark_process_dead``, which has to run in the arbiter: the dead worker
cannot do it itself.
"""

from sessions_app.observability import metrics


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    metrics.mark_process_dead(worker.pid)
