"""Apply a batch of changes with a list of handlers, and say which changes were not applied.

A handler is one function ``handler(changes: Sequence[Change]) -> None`` that is idempotent (the
stream delivers at least once) and handles each session's changes in the order given. The list
comes from ``settings.STREAM_HANDLERS``: a new consumer of changes (the search indexer) is one
function and one line there.

Each handler gets the whole batch first (one Redis pipeline for many records). If it raises, it
is run again one change at a time, in order, and stops at the first change it fails on: so every
handler has applied a gap-free prefix of the batch, and the changes from the earliest failure on
are reported failed. The handlers that did not fail have applied the whole batch — one broken
record delays only the handler it breaks. Retrying from the earliest failure (what the consumer
does, and what Lambda does with ``batchItemFailures``) gives each handler every change it missed,
and the ones it already applied again, which idempotence makes harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError
from django.conf import settings
from django.utils.module_loading import import_string

from ..exceptions import QueueUnavailable, RedisUnavailable, StoreUnavailable
from .records import Change

log = logging.getLogger("sessions_app.streams")

Handler = Callable[[Sequence[Change]], None]

# Failures that mean "a store is away": retried without limit, never skipped.
TRANSIENT_ERRORS = (RedisUnavailable, StoreUnavailable, QueueUnavailable, BotoCoreError, ConnectionError, TimeoutError)


@dataclass
class HandlerFailure:
    handler: str
    index: int  # position in the batch of the first change the handler failed on
    error: BaseException

    @property
    def transient(self) -> bool:
        return isinstance(self.error, TRANSIENT_ERRORS)


@dataclass
class BatchOutcome:
    changes: Sequence[Change]
    failures: list[HandlerFailure] = field(default_factory=list)

    @property
    def first_failed(self) -> int | None:
        """Index of the earliest change some handler did not apply (None: all applied)."""
        return min((f.index for f in self.failures), default=None)

    @property
    def applied(self) -> Sequence[Change]:
        """The prefix of the batch every handler applied."""
        first = self.first_failed
        return self.changes if first is None else self.changes[:first]

    @property
    def failed(self) -> Sequence[Change]:
        first = self.first_failed
        return () if first is None else self.changes[first:]

    @property
    def transient(self) -> bool:
        """Every failure was an outage (retry until it ends) rather than a broken record."""
        return all(f.transient for f in self.failures)

    def describe(self) -> str:
        return "; ".join(f"{f.handler} failed on {self.changes[f.index].seq}: {type(f.error).__name__}: {f.error}"
                         for f in self.failures)


def _name(handler: Handler) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', repr(handler))}"


def batch_apply(changes: Sequence[Change], handlers: Sequence[Handler]) -> BatchOutcome:
    """Run every handler on ``changes`` (see the module docstring); never raises."""
    outcome = BatchOutcome(changes=changes)
    if not changes:
        return outcome
    for handler in handlers:
        try:
            handler(changes)
            continue
        except Exception as batch_error:  # noqa: BLE001 — isolated below, one change at a time
            if len(changes) == 1:
                outcome.failures.append(HandlerFailure(_name(handler), 0, batch_error))
                continue
        for index, change in enumerate(changes):
            try:
                handler([change])
            except Exception as error:  # noqa: BLE001 — reported, the batch is retried from here
                outcome.failures.append(HandlerFailure(_name(handler), index, error))
                break
    for failure in outcome.failures:
        (log.warning if failure.transient else log.error)(
            "change handler %s failed on record %s: %s: %s", failure.handler, changes[failure.index].seq,
            type(failure.error).__name__, failure.error)
    return outcome


def handlers_from_settings() -> list[Handler]:
    """The handlers ``settings.STREAM_HANDLERS`` names (dotted paths), in that order."""
    return [import_string(path) for path in settings.STREAM_HANDLERS]
