"""The project's admin site: Django's, plus the project's ModelAdmins, the Chat sessions section
and the project's titles. It is the default site (``admin.site``, where the other apps' ModelAdmins
register too) through ``apps.AdminConfig.default_site``.
"""

from __future__ import annotations

from django.contrib import admin

from ..models import ApiKey, AuditLog
from .api_keys import ApiKeyAdmin
from .audit_log import AuditLogAdmin
from .chat_sessions import ChatSessionViews


class ConsoleAdminSite(admin.AdminSite):
    site_header = "MangaAssist administration"
    index_template = "admin/mangaassist_index.html"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        self.register(ApiKey, ApiKeyAdmin)
        self.register(AuditLog, AuditLogAdmin)

    def get_urls(self):
        # First, so "chat-sessions/" is not taken for an app label by the site's catch-all.
        return ChatSessionViews(self).urls + super().get_urls()
