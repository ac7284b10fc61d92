"""Declarations only: the DynamoDB single table (PynamoDB) and the few Django ORM tables."""

from .auth import ApiKey, AuditLog
from .table import (
    ChatItem,
    ClientMessageMarker,
    CompressedTextAttribute,
    SessionMeta,
    SessionStatus,
    Summary,
    Turn,
    reset_connections,
)

__all__ = [
    "ApiKey",
    "AuditLog",
    "ChatItem",
    "ClientMessageMarker",
    "CompressedTextAttribute",
    "SessionMeta",
    "SessionStatus",
    "Summary",
    "Turn",
    "reset_connections",
]
