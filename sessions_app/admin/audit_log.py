"""The staff audit log, read-only: an audit trail that staff could edit would prove nothing."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from ..models import AuditLog
from .times import when_display


class AuditLogAdmin(admin.ModelAdmin):
    list_display = ["created", "actor_username", "action", "outcome", "session_id", "customer_id"]
    list_filter = ["action", "outcome"]
    search_fields = ["actor_username", "session_id", "customer_id"]
    date_hierarchy = "created_at"
    readonly_fields = ["created", "actor", "actor_username", "action", "outcome", "session_id", "customer_id", "detail"]

    created = when_display("created_at", "created at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditLog | None = None) -> bool:
        return False
