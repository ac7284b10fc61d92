"""The one session filter: what the console list, its form, the filtered export and the API
listing (``GET /api/v1/sessions``) mean by "these sessions".

Every rule about a filter lives in ``SessionFilter.__post_init__``; a bad value raises
``InvalidInput`` naming the field as the API spells it (the console form maps the names to its
own labels). The form and the API only *parse* (text → date, "on" → True).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta

from ..clock import utcnow
from ..exceptions import InvalidInput
from ..ids import validate_id
from ..models import CHANNELS, SessionMeta, SessionStatus
from .listing import DEFAULT_DAYS, MAX_DAYS
from .summaries import SUMMARY_STATES

# No session predates the product; the floor also keeps day arithmetic clear of date.min.
EARLIEST_DAY = date(2000, 1, 1)


@dataclass(frozen=True)
class SessionFilter:
    day_from: date | None = None  # UTC, inclusive; default: DEFAULT_DAYS before day_to
    day_to: date | None = None  # UTC, inclusive; default: today
    customer_id: str | None = None
    status: str | None = None
    channel: str | None = None
    summary_state: str | None = None  # one of SUMMARY_STATES, as ``summaries.summary_state`` derives it
    online: bool = False  # list from the presence set (who is online now) instead of an index
    owner: str | None = None  # the console's "mine": sessions this staff username owns (by_owner index)

    def __post_init__(self) -> None:
        if self.customer_id is not None:
            validate_id(self.customer_id, field="customer_id")
        if self.owner is not None and (not isinstance(self.owner, str) or not 0 < len(self.owner) <= 150):
            raise InvalidInput("owner must be a username of 1-150 characters", field="owner")
        if self.owner is not None and self.online:
            raise InvalidInput("owner and online cannot be combined", field="owner")
        if self.status is not None and self.status not in SessionStatus.ALL:
            raise InvalidInput(f"status must be one of {', '.join(SessionStatus.ALL)}", field="status")
        if self.channel is not None and self.channel not in CHANNELS:
            raise InvalidInput(f"channel must be one of {', '.join(CHANNELS)}", field="channel")
        if self.summary_state is not None and self.summary_state not in SUMMARY_STATES:
            raise InvalidInput(f"summary_state must be one of {', '.join(SUMMARY_STATES)}", field="summary_state")
        for name in ("day_from", "day_to"):
            day = getattr(self, name)
            if day is not None and day < EARLIEST_DAY:
                raise InvalidInput(f"{name} must not be before {EARLIEST_DAY.isoformat()}", field=name)
        day_from, day_to = self.days()
        if day_from > day_to:
            raise InvalidInput("day_from must not be after day_to", field="day_from")
        if (day_to - day_from).days >= MAX_DAYS:
            raise InvalidInput(f"a day range spans at most {MAX_DAYS} days", field="day_from")

    @classmethod
    def for_customer(cls, customer_id: str) -> SessionFilter:
        """All of a customer's sessions a listing can reach: the widest day range it accepts."""
        today = utcnow().date()
        return cls(customer_id=customer_id, day_from=today - timedelta(days=MAX_DAYS - 1), day_to=today)

    def days(self) -> tuple[date, date]:
        """The day range this filter covers, defaults applied (as ``session_list`` applies them)."""
        day_to = self.day_to or utcnow().date()
        return self.day_from or day_to - timedelta(days=DEFAULT_DAYS - 1), day_to

    def listing_kwargs(self) -> dict:
        """The part ``session_list`` serves from an index (online and owner are listed otherwise,
        and the summary state is checked again per row: see ``browse.session_find``)."""
        return {"day_from": self.day_from, "day_to": self.day_to, "customer_id": self.customer_id,
                "status": self.status, "channel": self.channel, "summary_state": self.summary_state}

    def matches(self, meta: SessionMeta, *, summary_state: str) -> bool:
        """Whether one session (with its derived summary state) passes every filter. Only the
        days given count: the online and owner listings have no default range (whoever is online
        now, whatever one holds now)."""
        day = meta.started_at.date()
        return ((self.day_from is None or day >= self.day_from) and (self.day_to is None or day <= self.day_to)
                and self.customer_id in (None, meta.customer_id)
                and self.status in (None, meta.status)
                and self.channel in (None, meta.channel)
                and self.owner in (None, meta.owner)
                and self.summary_state in (None, summary_state))

    def as_dict(self) -> dict[str, str]:
        """The filters that are set, as text (audit rows, query strings)."""
        return {k: (v.isoformat() if isinstance(v, date) else str(v)) for k, v in asdict(self).items() if v}
