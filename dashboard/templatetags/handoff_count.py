"""The "needs a human" count of every console page (its title and the nav link).

``{% handoff_waiting as waiting %}``: the number of hand-offs waiting for a human, for a user
who may read sessions; None for anyone else (the login page asks nothing of DynamoDB) and when
the store does not answer. The count is ``selectors.overview.handoff_waiting_count``: a COUNT
Query per queue shard, memoised per process for ``HANDOFF_COUNT_CACHE_SECONDS`` (5 s), so a busy
console costs at most one count per process every 5 s, however many pages it serves.
"""

from __future__ import annotations

from django import template

from sessions_app.access import VIEW, staff_allowed
from sessions_app.selectors.overview import handoff_waiting_count

register = template.Library()


@register.simple_tag(takes_context=True)
def handoff_waiting(context) -> int | None:
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    if user is None or not staff_allowed(user=user, perm=VIEW):
        return None
    return handoff_waiting_count()
