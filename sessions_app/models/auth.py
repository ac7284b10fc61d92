"""Django ORM tables: API keys for the chatbot runtime, and the staff audit log."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.db import models


class ApiKey(models.Model):
    """A per-client API key. Only a SHA-256 digest of the key is stored: keys are 256-bit random
    tokens, so a fast digest is safe (no dictionary to attack) and keeps per-request checks cheap;
    the short ``prefix`` finds the row without revealing the key."""

    SCOPE_READ = "read"
    SCOPE_WRITE = "write"
    SCOPES = [(SCOPE_READ, "read"), (SCOPE_WRITE, "read + write")]

    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=12, db_index=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    scope = models.CharField(max_length=10, choices=SCOPES, default=SCOPE_READ)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…, {self.scope})"

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @staticmethod
    def hash_of(raw_key: str) -> str:
        """The stored form of a raw key (what ``key_hash`` holds)."""
        return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


class AuditLog(models.Model):
    """One row per staff action on a session or customer, written by the services."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL)
    actor_username = models.CharField(max_length=150)
    action = models.CharField(max_length=50, db_index=True)
    # As long as any id may be (sessions_app.ids): PostgreSQL would refuse a longer value.
    session_id = models.CharField(max_length=128, blank=True, db_index=True)
    customer_id = models.CharField(max_length=128, blank=True, db_index=True)
    outcome = models.CharField(max_length=20)
    detail = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        permissions = [
            ("view_chat_sessions", "Can view chat sessions in the console"),
            ("operate_chat_sessions", "Can act on chat sessions (close, summarise, export, delete)"),
            ("handle_chat_sessions", "Can take chat sessions over, reply as staff and hand them back"),
        ]

    def __str__(self) -> str:
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_username} {self.action} {self.outcome}"
