"""Declarations only: the DynamoDB single table (PynamoDB) and the few Django ORM tables."""

from .alerts import AlertEvent, AlertState, MetricSample
from .auth import ApiKey, AuditLog
from .profile import StaffProfile
from .table import (
    CHANNELS,
    LOCALES,
    ChatItem,
    ClientMessageMarker,
    CompressedTextAttribute,
    SessionMeta,
    SessionStatus,
    Summary,
    Turn,
    app_write_mark,
)

__all__ = [
    "CHANNELS",
    "LOCALES",
    "ApiKey",
    "AuditLog",
    "ChatItem",
    "ClientMessageMarker",
    "CompressedTextAttribute",
    "SessionMeta",
    "SessionStatus",
    "StaffProfile",
    "Summary",
    "Turn",
    "app_write_mark",
]
