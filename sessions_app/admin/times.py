"""Admin columns and read-only fields for datetimes, in the console's one format
(``sessions_app.timezones.when_format``: the staff member's zone, with its abbreviation)."""

from __future__ import annotations

from django.contrib import admin

from ..timezones import when_format


def when_display(field: str, description: str):
    """A ModelAdmin display method showing ``field`` as ``2026-12-07 15:04:05 JST`` (sortable by
    the field; "—" when empty). Use its attribute name in list_display / readonly_fields."""

    @admin.display(description=description, ordering=field, empty_value="—")
    def show(self, obj):
        return when_format(getattr(obj, field)) or None

    show.__name__ = f"{field}_when"
    return show
