"""Structured logs: one JSON object a line in production, aligned ``key=value`` text locally, and
on every line of a request its request id.

The whole process logs through the standard library's ``logging`` (the project's
``logging.getLogger(__name__)`` calls with %-style messages, Django's, Celery's, botocore's);
:func:`logging_config` builds the ``LOGGING`` dict whose one handler formats every record with
structlog's ``ProcessorFormatter``. A record gets the fields bound to the current context
(``structlog.contextvars``), its level, its logger's name and an ISO 8601 UTC timestamp, and is
then rendered as JSON (``LOG_FORMAT=json``, the production default) or for a terminal
(``LOG_FORMAT=console``). Code that prefers ``structlog.get_logger()`` ends in the same handler:
:func:`configure` (Django's ``LOGGING_CONFIG``) points structlog at the standard library.

What the context carries:

- ``request_id``, ``method``, ``path``: bound by :class:`RequestIdMiddleware` for the whole
  request. The id is the caller's ``X-Request-ID`` when it looks like an id, else a new one, and
  is sent back in the response's ``X-Request-ID``.
- ``session_id``, ``customer_id``, ``connection_id``: bound by the views and services that know
  them, through :func:`bind`, which accepts those names only: ids, never a turn's text, a
  summary or a staff reply.
- ``task_name``, ``task_id`` and the ``request_id`` of the request that enqueued the task, in a
  Celery task (:func:`connect_celery_signals`).

Tracebacks are rendered as plain text, without local variables: the locals of a failed append
hold the customer's message, which must never reach a log.
"""

from __future__ import annotations

import logging
import logging.config
import re
import uuid
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

import structlog

HEADER = "X-Request-ID"
# What a caller's X-Request-ID must look like to be kept: an id from a load balancer, a gateway or
# the bot runtime (a UUID, "Root=1-5f…", a ULID), not free text that would land in every line.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# The fields :func:`bind` accepts: identifiers of what a log line is about.
BINDABLE = frozenset({"request_id", "session_id", "customer_id", "connection_id", "task_name", "task_id"})

log = structlog.get_logger(__name__)

# Whether :func:`configure` ran in this process (see _celery_setup_logging).
_configured = False

# The context of whoever ran a task inline (an eager task, or a task called from another task's
# body), restored when it ends: a stack, because such calls nest.
_outer_contexts: ContextVar[tuple[dict[str, Any], ...]] = ContextVar("mangaassist_log_outer_contexts", default=())


# --- configuration --------------------------------------------------------------------------------

def _shared_processors() -> list:
    """What every line gets, whether it comes from ``logging`` or from structlog."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


def formatter(*, json: bool) -> structlog.stdlib.ProcessorFormatter:
    """The ``logging.Formatter`` of the process's handler: JSON lines, or console text."""
    if json:
        # format_exc_info: the traceback as one plain string field ("exception"); structlog's
        # dict tracebacks would include every frame's local variables.
        rendering = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        # plain_traceback: structlog would use rich's traceback (installed here) by default,
        # which prints the frames' local variables.
        rendering = [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=structlog.dev.plain_traceback)]
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *rendering],
    )


def logging_config(*, level: str, json: bool, levels: Mapping[str, str] | None = None) -> dict:
    """The ``LOGGING`` dict: every record to stderr through :func:`formatter`.

    ``level`` is the root logger's; ``levels`` sets single loggers' (noisy libraries). Django's
    own loggers are named so that the console handler Django installs by default (unstructured
    text) is dropped and their records reach the root handler like every other.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"structured": {"()": f"{__name__}.formatter", "json": json}},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"level": "INFO", "handlers": [], "propagate": True},
            "django.server": {"level": "INFO", "handlers": [], "propagate": True},
            **{name: {"level": value} for name, value in (levels or {}).items()},
        },
    }


def configure(config: dict) -> None:
    """Django's ``LOGGING_CONFIG``: apply ``LOGGING`` and route structlog's loggers into it."""
    global _configured
    logging.config.dictConfig(config)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    _configured = True


# --- the context ----------------------------------------------------------------------------------

def bind(**fields: Any) -> None:
    """Add identifiers to every later log line of the current request or task.

    Only the names in :data:`BINDABLE` are accepted (anything else is a ``TypeError``): the
    context is for ids, and a field of free text would copy a customer's words into every line.
    ``None`` values are skipped. Outside a request or a task (a management command, a shell)
    nothing is bound: nothing would clear the fields there, and a command that starts many
    sessions would label all its later lines with the last one.
    """
    unknown = set(fields) - BINDABLE
    if unknown:
        raise TypeError(f"not a log context field: {', '.join(sorted(unknown))} "
                        f"(allowed: {', '.join(sorted(BINDABLE))})")
    context = structlog.contextvars.get_contextvars()
    if "request_id" not in context and "task_id" not in context:
        return
    structlog.contextvars.bind_contextvars(**{name: value for name, value in fields.items() if value is not None})


def current_request_id() -> str | None:
    """The request id bound to the current context: the request's, or the enqueuing request's
    in a task; None outside both."""
    return structlog.contextvars.get_contextvars().get("request_id")


def _sane(value: object) -> str | None:
    return value if isinstance(value, str) and _SANE_REQUEST_ID.fullmatch(value) else None


def new_request_id() -> str:
    return uuid.uuid4().hex


# --- requests -------------------------------------------------------------------------------------

def _clear_context(sender=None, **kwargs) -> None:
    structlog.contextvars.clear_contextvars()


class RequestIdMiddleware:
    """Binds the request's id (and its method and path) to every log line of the request, and
    answers it in ``X-Request-ID``; ``request.request_id`` holds it for views.

    The context is cleared when the request starts and when it finishes (Django's
    ``request_finished``, sent when the server closes the response), not when this middleware
    returns: Django logs a 4xx/5xx response ("Not Found: /api/v1/…") after the middleware chain
    has returned it, and that line belongs to the request too. A streaming response's body is
    produced before ``request_finished`` as well, so its lines keep the id.
    """

    def __init__(self, get_response):
        from django.core.signals import request_finished

        self.get_response = get_response
        request_finished.connect(_clear_context, dispatch_uid=f"{__name__}.clear_context")

    def __call__(self, request):
        request_id = _sane(request.headers.get(HEADER)) or new_request_id()
        request.request_id = request_id
        structlog.contextvars.clear_contextvars()  # whatever an earlier request of this thread left
        structlog.contextvars.bind_contextvars(request_id=request_id, method=request.method, path=request.path)
        response = self.get_response(request)
        response[HEADER] = request_id
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Every URL about one session names it session_id (the API's and the console's).
        bind(session_id=view_kwargs.get("session_id"))
        return None


# --- Celery ---------------------------------------------------------------------------------------

def _publish_request_id(headers=None, **kwargs) -> None:
    """``before_task_publish``: the enqueuing request's id travels in the message's headers.

    A custom header of a protocol-2 message becomes an attribute of the task's ``request``
    (``celery.worker.request.Request`` builds ``task.request`` from the message headers).
    A task published by a task (a retry, a follow-up) passes on the id the task runs under.
    """
    request_id = current_request_id()
    if request_id and headers is not None:
        headers.setdefault("request_id", request_id)


def _task_started(task_id=None, task=None, **kwargs) -> None:
    """``task_prerun``: the task's lines carry its name, its id and the request id it came with."""
    outer = structlog.contextvars.get_contextvars()
    _outer_contexts.set((*_outer_contexts.get(), outer))
    # A task run inline (eager) has no message: it runs under the caller's request id.
    request_id = _sane(getattr(task.request, "request_id", None)) or outer.get("request_id")
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_name=task.name, task_id=task_id)
    if request_id:
        structlog.contextvars.bind_contextvars(request_id=request_id)
    log.info("task started")


def _task_finished(**kwargs) -> None:
    """``task_postrun``: back to the context the task found (empty in a worker)."""
    stack = _outer_contexts.get()
    structlog.contextvars.clear_contextvars()
    if stack:
        _outer_contexts.set(stack[:-1])
        structlog.contextvars.bind_contextvars(**stack[-1])


def _celery_setup_logging(**kwargs) -> None:
    """``setup_logging``: a receiver tells Celery to leave logging alone. Without one, a worker
    puts its own text handlers and level (``--loglevel``) on the root logger: unstructured
    lines, and an in-process test worker would silence INFO for the whole test session.
    LOG_LEVEL and LOG_FORMAT decide for workers as for every process.

    Configures from Django's settings if Django has not done it yet in this process.
    """
    if not _configured:
        from django.conf import settings
        from django.utils.log import configure_logging

        configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)


def connect_celery_signals() -> None:
    """Connect the request-id propagation and the task context (process-wide signals, so the
    workers of this process, the in-process test worker included, get them). Idempotent."""
    from celery import signals

    signals.setup_logging.connect(_celery_setup_logging, weak=False, dispatch_uid=f"{__name__}.setup_logging")
    signals.before_task_publish.connect(_publish_request_id, weak=False, dispatch_uid=f"{__name__}.publish")
    signals.task_prerun.connect(_task_started, weak=False, dispatch_uid=f"{__name__}.prerun")
    signals.task_postrun.connect(_task_finished, weak=False, dispatch_uid=f"{__name__}.postrun")
