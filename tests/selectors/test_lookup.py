"""Lookups by id prefix, any case (selectors.lookup): sessions through by_session_prefix, customers
through the customer directory (by_customer_prefix). Real DynamoDB Local, directly and through the
DAX node; every request recorded, so the bounds (one GetItem, one Query each, never a Scan) are
checked, not assumed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from sessions_app import keys
from sessions_app.demo import demo_sessions
from sessions_app.exceptions import InvalidInput
from sessions_app.models import SessionMeta
from sessions_app.models.table import CustomerEntry
from tests.fixtures.dynamodb_calls import dynamodb_calls
from sessions_app.selectors.lookup import LOOKUP_LIMIT, customer_lookup, lookup, lookup_rows, session_lookup
from sessions_app.services import session_keys_backfill
from sessions_app.services.bulk import sessions_bulk_load
from tests.builders import at, make_session
from tests.fixtures.read_paths import ddb  # noqa: F401  (each test runs direct and through DAX)

DAY = date(2026, 11, 19)


@pytest.fixture
def requests_sent():
    """The DynamoDB operations sent while the test runs, in order."""
    with dynamodb_calls() as sent:
        yield sent


def _entry(customer_id: str) -> CustomerEntry:
    return CustomerEntry.get(keys.customer_item_pk(customer_id), keys.CUSTOMER_ITEM_SK, consistent_read=True)


# --- sessions -------------------------------------------------------------------------------------

def test_a_prefix_of_eight_characters_finds_its_sessions_in_any_case(ddb):
    ids = ["a1b2c3d4-one", "A1B2C3D4-two", "a1b2c3d4e5f6", "a1b2c3d5-other", "zz-a1b2c3d4"]
    for session_id in ids:
        make_session(session_id=session_id)
    found = session_lookup(query="A1B2C3D4")
    assert sorted(found.ids) == sorted(["a1b2c3d4-one", "A1B2C3D4-two", "a1b2c3d4e5f6"])
    assert (found.exact, found.more, found.prefix, found.single) == (None, False, True, None)
    # Longer prefixes narrow it down; the case of the query does not matter.
    assert session_lookup(query="a1b2c3d4-T").ids == ["A1B2C3D4-two"]
    assert session_lookup(query="a1b2c3d4-T").single == "A1B2C3D4-two"
    assert session_lookup(query="A1B2C3D4E5").single == "a1b2c3d4e5f6"
    assert session_lookup(query="a1b2c3d9").ids == []


def test_an_exact_id_comes_first_even_when_it_is_also_a_prefix(ddb, requests_sent):
    make_session(session_id="order-2026")
    make_session(session_id="order-2026-b")
    requests_sent.clear()
    found = session_lookup(query="order-2026")
    assert found.exact == "order-2026" and found.single == "order-2026"
    assert sorted(found.ids) == ["order-2026", "order-2026-b"]
    # The bound: one GetItem (the exact id), one Query (the prefix); no Scan.
    assert requests_sent == ["GetItem", "Query"]


def test_a_short_query_is_no_prefix_but_still_finds_an_exact_id_in_any_case(ddb):
    make_session(session_id="Ab12")
    make_session(session_id="ab12345678")
    short = session_lookup(query="ab12")
    assert (short.prefix, short.exact, short.ids) == (False, None, ["Ab12"])  # not ab12345678
    assert session_lookup(query="Ab12").exact == "Ab12"
    assert session_lookup(query="ab1").ids == []
    answer = lookup(query="ab1")
    assert answer.target is None and "at least 8 characters" in answer.error


def test_more_matches_than_listed_say_so(ddb, requests_sent):
    for n in range(LOOKUP_LIMIT + 2):
        make_session(session_id=f"bulkpref-{n:03d}")
    requests_sent.clear()
    found = session_lookup(query="BULKPREF")
    assert len(found.ids) == LOOKUP_LIMIT and found.more and found.single is None
    assert found.ids == sorted(found.ids)  # the index's order: the lower-cased id
    assert requests_sent == ["GetItem", "Query"]  # one page of 51 index items, not the 52 sessions
    rows = lookup_rows(session_ids=found.ids[:3])
    assert [row.meta.session_id for row in rows] == found.ids[:3]


def test_the_index_keys_are_written_once_with_meta(ddb):
    meta = make_session(session_id="KeyCase-Session-1", turns=3)
    stored = SessionMeta.get(keys.session_pk(meta.session_id), keys.META_SK, consistent_read=True)
    assert (stored.gsi9pk, stored.gsi9sk) == ("SIDP#keycase-", "keycase-session-1")


def test_not_an_id_is_refused(ddb):
    for bad in ("", "   ", "has space", "a#b", "x" * 129):
        with pytest.raises(InvalidInput):
            lookup(query=bad)


# --- customers ------------------------------------------------------------------------------------

def test_customers_by_prefix_case_insensitive(ddb, requests_sent):
    for n in range(10, 20):
        make_session(customer_id=f"CUST-{n:04d}")
    make_session(customer_id="CUST-0020")
    make_session(customer_id="cust-0018")
    make_session(customer_id="CUST-0018")  # a second session: still one directory entry
    requests_sent.clear()
    found = customer_lookup(query="cust-001")
    assert requests_sent == ["Query"]
    assert set(found.ids) == {f"CUST-{n:04d}" for n in range(10, 20)} | {"cust-0018"}
    assert len(found.ids) == 11 and "CUST-0018" in found.ids and "CUST-0010" in found.ids
    assert found.single is None and not found.more
    both = customer_lookup(query="CUST-0018")
    assert sorted(both.ids) == ["CUST-0018", "cust-0018"] and both.exact == "CUST-0018"
    assert customer_lookup(query="Cust-0018").exact is None and customer_lookup(query="Cust-0018").single is None
    assert customer_lookup(query="CUST-0020").single == "CUST-0020"


def test_a_customer_in_another_case_is_found(ddb):
    make_session(customer_id="cust-0018")
    found = customer_lookup(query="CUST-0018")
    assert found.ids == ["cust-0018"] and found.exact is None and found.single == "cust-0018"
    assert lookup(query="CUST-0018").target == ("customer", "cust-0018")
    # Shorter than 3: only a whole id, in any case.
    make_session(customer_id="Xy")
    assert customer_lookup(query="xY").ids == ["Xy"] and not customer_lookup(query="xY").prefix
    assert customer_lookup(query="cu").ids == []


def test_the_directory_entry_expires_with_the_newest_session(ddb, settings):
    make_session(customer_id="cust-ttl", started_at=at("2026-11-20"))
    make_session(customer_id="cust-ttl", started_at=at("2026-11-10"))  # older: does not shorten it
    entry = _entry("cust-ttl")
    assert entry.expires_at == at("2026-11-20") + timedelta(days=settings.SESSION_TTL_DAYS)
    assert entry.newest_started_at == at("2026-11-20")
    make_session(customer_id="cust-ttl", started_at=at("2026-11-25"))
    assert _entry("cust-ttl").expires_at == at("2026-11-25") + timedelta(days=settings.SESSION_TTL_DAYS)
    assert (entry.gsi10pk, entry.gsi10sk) == ("CIDP#cus", "cust-ttl")


def test_the_lookup_box_goes_to_one_thing_or_lists(ddb):
    meta = make_session(customer_id="shop-42", session_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0")
    make_session(customer_id="shop-43", session_id="0f1e2d3c-second")
    assert lookup(query=meta.session_id).target == ("session", meta.session_id)
    assert lookup(query="0F1E2D3C4B").target == ("session", meta.session_id)  # one match, any case
    several = lookup(query="0f1e2d3c")
    assert several.target is None and len(several.sessions.ids) == 2 and several.error is None
    assert lookup(query="SHOP-42").target == ("customer", "shop-42")
    shops = lookup(query="shop")
    assert shops.target is None and sorted(shops.customers.ids) == ["shop-42", "shop-43"]
    assert lookup(query="nobody-here").found is False and lookup(query="nobody-here").error is None


# --- bulk loads and older sessions ------------------------------------------------------------------

def test_bulk_loaded_sessions_and_their_customers_are_found(ddb, settings):
    specs = demo_sessions(count=30, now=at("2026-11-20", 600))
    sessions_bulk_load(specs=specs, threads=4)
    metas = list(SessionMeta.by_customer.query(keys.customer_pk(specs[0].customer_id)))
    assert metas
    target = metas[0].session_id
    assert lookup(query=target[:8].upper()).sessions.ids.count(target) == 1
    customers = {s.customer_id for s in specs}
    found = customer_lookup(query="CUST-00")
    assert set(found.ids) == customers
    for customer_id in customers:
        newest = max(s.started_at for s in specs if s.customer_id == customer_id)
        assert _entry(customer_id).expires_at == newest + timedelta(days=settings.SESSION_TTL_DAYS)


def test_backfill_writes_the_lookup_keys_and_directory_of_older_sessions(ddb, settings):
    metas = [make_session(session_id=f"olderses-{n}", customer_id=f"Legacy-{n % 3}", started_at=at(DAY.isoformat(), n))
             for n in range(6)]
    # As before the lookup indexes: no keys on META, no directory.
    for meta in metas:
        SessionMeta(keys.session_pk(meta.session_id), keys.META_SK).update(
            actions=[SessionMeta.gsi9pk.remove(), SessionMeta.gsi9sk.remove()])
    for n in range(3):
        _entry(f"Legacy-{n}").delete()
    assert session_lookup(query="OLDERSES").ids == [] and customer_lookup(query="legacy").ids == []

    report = session_keys_backfill(day_from=DAY, day_to=DAY)
    assert (report.sessions_seen, report.sessions_updated) == (6, 6)
    assert sorted(session_lookup(query="OLDERSES").ids) == sorted(m.session_id for m in metas)
    assert sorted(customer_lookup(query="legacy").ids) == ["Legacy-0", "Legacy-1", "Legacy-2"]
    assert _entry("Legacy-2").expires_at == at(DAY.isoformat(), 5) + timedelta(days=settings.SESSION_TTL_DAYS)
    again = session_keys_backfill(day_from=DAY, day_to=DAY)
    assert again.sessions_updated == 0
