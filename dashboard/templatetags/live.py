"""``{% live_events_url "sessions" session_id %}``: where a page's live-updates stream is — on the
SSE server (sessions_app/live), at ``SSE_ORIGIN`` (empty: this origin, behind a load-balancer
rule for ``/events/``)."""

from __future__ import annotations

from urllib.parse import quote

from django import template
from django.conf import settings

register = template.Library()


@register.simple_tag
def live_events_url(stream: str, object_id: str = "") -> str:
    path = "/events/activity" if stream == "activity" else f"/events/sessions/{quote(str(object_id), safe='')}"
    return f"{settings.SSE_ORIGIN}{path}"
