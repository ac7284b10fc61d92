"""``django.contrib.admin`` with the project's site as the default one (``admin.site``): Django's
documented way to override the default admin site."""

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "sessions_app.admin.site.ConsoleAdminSite"
