from django.apps import AppConfig
from django.conf import settings
from django.core import checks


class SessionsAppConfig(AppConfig):
    name = "sessions_app"
    verbose_name = "Chat sessions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(search_engine_check, checks.Tags.database, deploy=True)


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
