"""Writes. Each function is keyword-only, validates its input, and states its contract."""

from .backfill import BACKFILLED_INDEXES, BackfillReport, session_keys_backfill
from .sessions import CHANNELS, LOCALES, session_close, session_start
from .table import TableReport, table_delete, table_ensure
from .turns import ROLES, AppendResult, turn_append, turn_validate, turn_write

__all__ = [
    "BACKFILLED_INDEXES",
    "BackfillReport",
    "session_keys_backfill",
    "CHANNELS",
    "LOCALES",
    "ROLES",
    "AppendResult",
    "TableReport",
    "session_close",
    "session_start",
    "table_delete",
    "table_ensure",
    "turn_append",
    "turn_validate",
    "turn_write",
]
