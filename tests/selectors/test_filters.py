"""SessionFilter: the one place the rules of a session filter live (no I/O needed)."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from sessions_app.clock import utcnow
from sessions_app.exceptions import InvalidInput
from sessions_app.models import SessionMeta
from sessions_app.selectors.filters import SUMMARY_STATES, SessionFilter
from sessions_app.selectors.listing import MAX_DAYS


@pytest.mark.parametrize("fields, field", [
    ({"customer_id": "has space"}, "customer_id"),
    ({"status": "open"}, "status"),
    ({"channel": "fax"}, "channel"),
    ({"summary_state": "queued"}, "summary_state"),  # a raw value the service never writes
    ({"day_from": date(2026, 11, 21), "day_to": date(2026, 11, 20)}, "day_from"),
    ({"day_from": date(2025, 1, 1), "day_to": date(2026, 11, 20)}, "day_from"),
    ({"day_to": date(1999, 12, 31)}, "day_to"),
    ({"day_from": date(1, 1, 1)}, "day_from"),
])
def test_each_rule_names_its_field(fields, field):
    with pytest.raises(InvalidInput) as raised:
        SessionFilter(**fields)
    assert raised.value.field == field


def test_the_widest_range_is_accepted_and_one_day_more_is_not():
    last = date(2026, 11, 20)
    SessionFilter(day_from=last - timedelta(days=MAX_DAYS - 1), day_to=last)
    with pytest.raises(InvalidInput):
        SessionFilter(day_from=last - timedelta(days=MAX_DAYS), day_to=last)


def test_the_summary_states_are_those_summary_state_derives():
    assert SUMMARY_STATES == ("none", "pending", "fresh", "stale", "failed")


def test_for_customer_spans_the_widest_range_ending_today():
    f = SessionFilter.for_customer("cust-1")
    today = utcnow().date()
    assert (f.customer_id, f.day_to, (f.day_to - f.day_from).days) == ("cust-1", today, MAX_DAYS - 1)


def test_as_dict_keeps_what_is_set_as_text():
    f = SessionFilter(day_from=date(2026, 11, 20), day_to=date(2026, 11, 20), channel="line", online=True)
    assert f.as_dict() == {"day_from": "2026-11-20", "day_to": "2026-11-20", "channel": "line", "online": "True"}
    assert SessionFilter().as_dict() == {}


def test_matches_applies_only_the_days_given():
    meta = SessionMeta(session_id="s", customer_id="c", channel="web", status="active",
                       started_at=utcnow() - timedelta(days=90))
    assert SessionFilter(online=True).matches(meta, summary_state="none")  # no default 30-day window
    assert not SessionFilter(day_from=utcnow().date() - timedelta(days=30)).matches(meta, summary_state="none")
    assert not SessionFilter(channel="app").matches(meta, summary_state="none")
    assert not SessionFilter(summary_state="stale").matches(meta, summary_state="none")
    assert SessionFilter(customer_id="c", status="active", summary_state="none").matches(meta, summary_state="none")
