"""The Django admin, one module per concern:

* ``site`` — the project's ``AdminSite``: Django's, plus the project's ModelAdmins and the Chat
  sessions section. ``apps.AdminConfig`` (in INSTALLED_APPS instead of "django.contrib.admin")
  makes it the default site;
* ``api_keys`` — the bot runtime's API keys;
* ``audit_log`` — the staff audit log, read-only;
* ``chat_sessions`` — chat sessions, which live in DynamoDB, not the ORM: admin views calling the
  same selectors, services and access policy as the staff console.

Nothing is imported here: Django imports ``apps`` (and so this package) while it loads
INSTALLED_APPS, before models can be imported. The site registers the ModelAdmins when it is
built (after start-up), so autodiscovery finds nothing to do in this package.
"""
