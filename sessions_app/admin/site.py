"""The project's admin site: Django's, plus the project's ModelAdmins, the Chat sessions section
and the project's titles. It is the default site (``admin.site``, where the other apps' ModelAdmins
register too) through ``apps.AdminConfig.default_site``.

Two sections, each once and named for what it holds: "Chat sessions" (the DynamoDB sessions, the
index template's own module) and the project app's ORM models — API keys and the audit log — under
``ORM_SECTION_NAME``, not under the app's verbose name "Chat sessions" (which put two "Chat
sessions" headings on the index and a "Chat sessions" breadcrumb that led to API keys). The
breadcrumbs of those models' pages say the same (templates/admin/sessions_app/).
"""

from __future__ import annotations

from django.contrib import admin

from ..models import ApiKey, AuditLog
from .api_keys import ApiKeyAdmin
from .audit_log import AuditLogAdmin
from .chat_sessions import ChatSessionViews


PROJECT_APP_LABEL = "sessions_app"
ORM_SECTION_NAME = "API keys and audit log"


class ConsoleAdminSite(admin.AdminSite):
    site_header = "MangaAssist administration"
    index_template = "admin/mangaassist_index.html"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        self.register(ApiKey, ApiKeyAdmin)
        self.register(AuditLog, AuditLogAdmin)

    def get_app_list(self, request, app_label=None):
        """Django's list (the index, the app index and its title, the nav sidebar), with the
        project app's section named for its models."""
        app_list = super().get_app_list(request, app_label)
        for app in app_list:
            if app["app_label"] == PROJECT_APP_LABEL:
                app["name"] = ORM_SECTION_NAME
        return app_list

    def each_context(self, request):
        return {**super().each_context(request), "orm_section_name": ORM_SECTION_NAME}

    def get_urls(self):
        # First, so "chat-sessions/" is not taken for an app label by the site's catch-all.
        return ChatSessionViews(self).urls + super().get_urls()
