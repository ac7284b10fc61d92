import threading

from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Chat sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(search_engine_check, checks.Tags.database, deploy=True)
        checks.register(metrics_check, deploy=True)
        checks.register(redis_memory_policy_check, checks.Tags.caches, deploy=True)
        redis_memory_policy_log_at_start()


def search_engine_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """A deployment's search index must be one every host shares: the SQLite engine is a file on
    one host (each web host and indexer would have an index of its own, and a Lambda indexer's
    /tmp is gone after the invocation). docs/architecture.md §Search."""
    if settings.PRODUCTION and settings.SEARCH_ENGINE == "sqlite":
        return [checks.Warning(
            "SEARCH_ENGINE=sqlite keeps the search index in a file on this host (SEARCH_SQLITE_PATH)",
            hint="set SEARCH_ENGINE=postgres and SEARCH_DATABASE_URL, unless the console, the stream consumer "
                 "and nothing else run on this one host",
            id="mangaassist.W001")]
    return []


def metrics_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """gunicorn's workers (and Celery's pool processes) are separate processes: without the
    multiprocess directory each scrape of /metrics would report whichever worker answered it, and
    the console's operations panel only its own worker. docs/operating.md §Metrics."""
    if settings.PRODUCTION and settings.METRICS_ENABLED and not settings.PROMETHEUS_MULTIPROC_DIR:
        return [checks.Warning(
            "PROMETHEUS_MULTIPROC_DIR is unset: /metrics and the console would each show one process's numbers",
            hint="point it at an empty directory (a tmpfs) created before gunicorn and Celery start, "
                 "and run gunicorn with -c python:mangaassist.gunicorn_conf",
            id="mangaassist.W002")]
    return []


def redis_memory_policy_check(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Redis must evict as documented (``REDIS_MAXMEMORY_POLICY``; why: realtime/memory_policy.py):
    an error in production, a warning elsewhere. Silent when Redis cannot be reached (a build
    without Redis, `make check`) or has no memory limit (the policy never acts then)."""
    from sessions_app.realtime.memory_policy import memory_policy_mismatches, memory_policy_problem

    mismatches = memory_policy_mismatches()
    if not mismatches:
        return []
    hint = (f"set maxmemory-policy {settings.REDIS_MAXMEMORY_POLICY} (ElastiCache: in the cluster's parameter "
            "group), or REDIS_MAXMEMORY_POLICY if another policy is meant")
    if settings.PRODUCTION:
        return [checks.Error(memory_policy_problem(mismatches), hint=hint, id="mangaassist.E003")]
    return [checks.Warning(memory_policy_problem(mismatches), hint=hint, id="mangaassist.W003")]


def redis_memory_policy_log_at_start() -> None:
    """Every process (web worker, Celery, the consumers, the SSE server) logs a warning once at
    start when Redis evicts otherwise than documented. In a daemon thread with its own
    short-lived client: start-up never waits for Redis, and never fails because it is down."""
    from sessions_app.realtime.memory_policy import ANY_POLICY, memory_policy_log

    if settings.REDIS_MAXMEMORY_POLICY != ANY_POLICY:
        threading.Thread(target=memory_policy_log, name="redis-memory-policy", daemon=True).start()
