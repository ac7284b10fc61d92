import itertools
import random
from datetime import date

import pytest
from django.core import signing
from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from sessions_app import keys, selectors, services
from sessions_app.exceptions import InvalidCursor, InvalidInput
from tests.builders import at, make_session
from tests.fixtures.read_paths import ddb  # noqa: F401  (each test runs direct and through DAX)

DAYS = ["2026-11-18", "2026-11-19", "2026-11-20"]


def _walk(**filters):
    ids, cursor, pages = [], None, 0
    while True:
        page = selectors.session_list(cursor=cursor, **filters)
        ids += [m.session_id for m in page.sessions]
        pages += 1
        cursor = page.cursor
        if cursor is None:
            return ids, pages


@pytest.fixture
def population(ddb, settings):
    settings.DYNAMODB_DAY_SHARDS = 4
    settings.DYNAMODB_STATUS_SHARDS = 3
    rng = random.Random(7)
    sessions = []
    for n in range(45):
        meta = make_session(
            customer_id=rng.choice(["alice", "bob", "chika"]),
            channel=rng.choice(["web", "app"]),
            started_at=at(rng.choice(DAYS), minute=n),
            status=rng.choice(["active", "handed_off"]),
        )
        sessions.append(meta)
    for meta in sessions[::5]:
        services.session_close(session_id=meta.session_id)
        meta.status = "closed"
    return sessions


def _newest_first(sessions):
    return [m.session_id for m in sorted(sessions, key=lambda m: (m.started_at, m.session_id), reverse=True)]


def test_all_sessions_across_day_shards_exactly_once_newest_first(population):
    ids, pages = _walk(day_from=date(2026, 11, 18), day_to=date(2026, 11, 20), limit=7)
    assert ids == _newest_first(population)
    assert pages >= 7


@pytest.mark.parametrize("customer", ["alice", "bob", "chika"])
def test_customer_listing_is_complete_and_ordered(population, customer):
    ids, _ = _walk(customer_id=customer, day_from=date(2026, 11, 1), day_to=date(2026, 11, 30), limit=4)
    assert ids == _newest_first([m for m in population if m.customer_id == customer])


@pytest.mark.parametrize("status", ["active", "handed_off", "closed"])
def test_status_listing_uses_the_sparse_index_or_filters(population, status):
    ids, _ = _walk(status=status, day_from=date(2026, 11, 18), day_to=date(2026, 11, 20), limit=5)
    assert ids == _newest_first([m for m in population if m.status == status])


def test_filters_combine(population):
    ids, _ = _walk(status="active", channel="app", day_from=date(2026, 11, 19), day_to=date(2026, 11, 19), limit=3)
    expected = [m for m in population if m.status == "active" and m.channel == "app" and m.started_at.date() == date(2026, 11, 19)]
    assert ids == _newest_first(expected)


@pytest.mark.parametrize("channel, status", [("web", None), ("app", None), ("web", "closed"), ("app", "active")])
def test_channel_listing_is_complete_and_ordered(population, channel, status):
    ids, _ = _walk(channel=channel, status=status, day_from=date(2026, 11, 18), day_to=date(2026, 11, 20), limit=4)
    assert ids == _newest_first([m for m in population if m.channel == channel and (status is None or m.status == status)])


@pytest.fixture
def queries(monkeypatch):
    """The index and filter of every Query the listing sends (the real call still runs)."""
    from pynamodb.connection.base import Connection

    sent, original = [], Connection.query

    def query(self, table_name, hash_key, *args, **kwargs):
        sent.append((kwargs.get("index_name"), hash_key, kwargs.get("filter_condition")))
        return original(self, table_name, hash_key, *args, **kwargs)

    monkeypatch.setattr(Connection, "query", query)
    return sent


def test_channel_is_a_key_condition_not_a_filter(population, queries, settings):
    settings.DYNAMODB_CHANNEL_SHARDS = 4
    page = selectors.session_list(channel="web", day_from=date(2026, 11, 20), day_to=date(2026, 11, 20), limit=3)
    assert page.sessions and {m.channel for m in page.sessions} == {"web"}
    assert {index for index, _, _ in queries} == {"by_channel"}
    assert all(condition is None for _, _, condition in queries)
    assert {pk for _, pk, _ in queries} == {keys.channel_day_pk("web", date(2026, 11, 20), shard) for shard in range(4)}


def test_filtered_partitions_read_a_larger_first_chunk(ddb, settings, queries):
    # Nine in ten sessions closed, all in one shard: with the first chunk as large as an
    # unfiltered one, the filter would leave the page short after one read and need another.
    settings.DYNAMODB_DAY_SHARDS = 1
    for n in range(30):
        meta = make_session(session_id=f"f-{n:02d}", started_at=at("2026-11-19", minute=n))
        if n % 10:
            services.session_close(session_id=meta.session_id)
    page = selectors.session_list(status="closed", day_from=date(2026, 11, 19), day_to=date(2026, 11, 19), limit=10)
    assert [m.session_id for m in page.sessions] == [f"f-{n:02d}" for n in range(29, -1, -1) if n % 10][:10]
    assert len(queries) == 1


@pytest.mark.parametrize("filters", [{}, {"channel": "web"}, {"status": "active"}, {"customer_id": "alice"}])
def test_a_session_started_after_a_listing_shows_in_the_next_one(population, filters):
    # Through DAX, a repeated Query is answered from the query cache, which writes never update.
    window = {"day_from": date(2026, 11, 18), "day_to": date(2026, 11, 20), "limit": 3}
    before = selectors.session_list(**window, **filters)
    newest = make_session(customer_id="alice", channel="web", started_at=at("2026-11-20", minute=500))
    after = selectors.session_list(**window, **filters)
    assert newest.session_id not in [m.session_id for m in before.sessions]
    assert after.sessions[0].session_id == newest.session_id


def test_listing_returns_fresh_meta(population):
    target = population[0]
    services.turn_write(session_id=target.session_id, role="user", text="hi", client_msg_id="x1") if target.status != "closed" else None
    page = selectors.session_list(customer_id=target.customer_id, day_from=date(2026, 11, 1), day_to=date(2026, 11, 30), limit=200)
    [listed] = [m for m in page.sessions if m.session_id == target.session_id]
    assert listed.turn_count == (0 if target.status == "closed" else 1)


def test_tight_read_budget_gives_short_page_with_cursor_and_loses_nothing(ddb, settings):
    # Every session in one shard of one day: filling a page of 10 from it takes several reads of
    # that partition, more than a budget of 3 allows after the first read of each of the 4 shards.
    settings.DYNAMODB_DAY_SHARDS = 4
    ids = (f"hot-{n}" for n in itertools.count())
    hot = [i for i in itertools.islice((i for i in ids if keys.shard_of(i, 4) == 0), 24)]
    sessions = [make_session(session_id=sid, started_at=at("2026-11-19", minute=n)) for n, sid in enumerate(hot)]
    ids_seen, cursor, short = [], None, 0
    while True:
        page = selectors.session_list(day_from=date(2026, 11, 19), day_to=date(2026, 11, 19), limit=10,
                                      cursor=cursor, max_requests=3)
        short += page.short_reason is not None
        ids_seen += [m.session_id for m in page.sessions]
        cursor = page.cursor
        if cursor is None:
            break
    assert short > 0
    assert ids_seen == _newest_first(sessions)


def test_cursor_from_other_filters_is_rejected(population):
    page = selectors.session_list(day_from=date(2026, 11, 18), day_to=date(2026, 11, 20), limit=5)
    with pytest.raises(InvalidCursor):
        selectors.session_list(day_from=date(2026, 11, 18), day_to=date(2026, 11, 20), channel="web", cursor=page.cursor)


def test_empty_listing_is_one_empty_page(ddb):
    page = selectors.session_list(day_from=date(2026, 1, 1), day_to=date(2026, 1, 3))
    assert page.sessions == [] and page.cursor is None


@pytest.mark.parametrize("kwargs, field", [
    ({"day_from": date(2026, 2, 1), "day_to": date(2026, 1, 1)}, "day_from"),
    ({"day_from": date(2024, 1, 1), "day_to": date(2026, 1, 1)}, "day_from"),
    ({"status": "sleeping"}, "status"),
    ({"channel": "fax"}, "channel"),
    ({"limit": 0}, "limit"),
    ({"customer_id": "bad id"}, "customer_id"),
])
def test_bad_listing_arguments_name_the_field(ddb, kwargs, field):
    with pytest.raises(InvalidInput) as info:
        selectors.session_list(**kwargs)
    assert info.value.field == field


# --- forged cursors: a valid signature proves we signed it once, not that its state is sane --------

WINDOW = {"day_from": date(2026, 11, 18), "day_to": date(2026, 11, 20)}  # population: 3 days x 4 day shards


def _signed(state, kind="sessions"):
    """A cursor with a valid signature and any state: what a holder of the signing key can make."""
    return keys.cursor_encode(keys.Cursor(kind=kind, state=state))


def _state_of(token):
    return signing.loads(token, salt=keys.CURSOR_SALT)["s"]


@pytest.fixture
def fingerprint(population):
    return _state_of(selectors.session_list(**WINDOW, limit=5).cursor)["f"]


SORT_KEY = "2026-11-20T08:00:00.000000Z#abc"


def _forged(f):
    return [
        [1], "abc", None, 7, {"p": "abcdefgh"}, {},
        {"f": f, "g": 0, "p": "abcd"},  # a string as long as the group: each letter a "position"
        {"f": f, "g": 0, "p": [1, 2, 3, 4]},
        {"f": f, "g": 0, "p": ["x", "x", "x", "x"]},
        {"f": f, "g": 0, "p": [{"a": 1}, None, None, None]},
        {"f": f, "g": 0, "p": ["2026-11-20T08:00:00.000000Z#bad id", None, None, None]},
        {"f": f, "g": 0, "p": ["2026-11-20#abc", None, None, None]},
        {"f": f, "g": 0, "p": [SORT_KEY, None, None]},  # not one position per shard
        {"f": f, "g": True, "p": None},
        {"f": f, "g": -1, "p": None},
        {"f": f, "g": 3, "p": None},  # past the last day
        {"f": f, "g": 0.0, "p": None},
        {"f": f, "g": "0", "p": None},
        {"f": f, "g": 0, "p": None, "extra": 1},
        {"f": f, "g": 0},
        {"f": [f], "g": 0, "p": None},
    ]


def test_a_signed_cursor_with_a_forged_state_is_an_invalid_cursor(population, fingerprint):
    for state in _forged(fingerprint):
        with pytest.raises(InvalidCursor) as info:
            selectors.session_list(**WINDOW, cursor=_signed(state))
        assert info.value.field == "cursor", state


def test_a_position_outside_the_listings_days_is_an_invalid_cursor_not_a_store_error(population):
    f = _state_of(selectors.session_list(customer_id="alice", **WINDOW, limit=1).cursor)["f"]
    for position in ("2025-01-01T00:00:00.000000Z#abc", "2027-01-01T00:00:00.000000Z#abc"):
        with pytest.raises(InvalidCursor):
            selectors.session_list(customer_id="alice", **WINDOW, cursor=_signed({"f": f, "g": 0, "p": [position]}))


def test_a_well_formed_state_still_pages(population, fingerprint):
    page = selectors.session_list(**WINDOW, limit=3, cursor=_signed({"f": fingerprint, "g": 0, "p": None}))
    assert [m.session_id for m in page.sessions] == _newest_first(population)[:3]


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=3), children, max_size=4),
    max_leaves=12,
)
_position = st.none() | st.just("done") | st.just(SORT_KEY) | _json


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_signed_state_is_a_page_or_an_invalid_cursor_never_a_crash(population, fingerprint, data):
    state = data.draw(_json | st.fixed_dictionaries({
        "f": st.just(fingerprint) | _json,
        "g": st.integers(-2, 4) | _json,
        "p": st.none() | st.lists(_position, min_size=3, max_size=5) | _json,
    }))
    try:
        page = selectors.session_list(**WINDOW, limit=3, cursor=_signed(state))
    except InvalidCursor as exc:
        assert exc.field == "cursor"
    else:
        assert len(page.sessions) <= 3
