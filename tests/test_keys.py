from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sessions_app import keys
from sessions_app.exceptions import InvalidCursor


@given(st.integers(min_value=0, max_value=keys.MAX_SEQ), st.integers(min_value=0, max_value=keys.MAX_SEQ))
def test_turn_keys_sort_like_their_numbers_and_round_trip(a, b):
    assert keys.seq_from_turn_sk(keys.turn_sk(a)) == a
    assert (keys.turn_sk(a) < keys.turn_sk(b)) == (a < b)
    assert (keys.summary_sk(a) < keys.summary_sk(b)) == (a < b)


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)),
)
def test_timestamps_sort_chronologically_and_round_trip(a, b):
    assert keys.parse_ts(keys.ts_str(a)) == a
    assert (keys.ts_str(a) < keys.ts_str(b)) == (a < b)
    assert (keys.started_sk(a, "x") < keys.started_sk(b, "x")) == (a < b)


def test_sequence_out_of_range_is_refused():
    with pytest.raises(ValueError):
        keys.turn_sk(-1)
    with pytest.raises(ValueError):
        keys.turn_sk(keys.MAX_SEQ + 1)


def test_naive_timestamps_are_refused():
    with pytest.raises(ValueError):
        keys.ts_str(datetime(2026, 1, 1))


@given(st.text(alphabet="abcdef0123456789", min_size=8, max_size=32), st.integers(min_value=1, max_value=64))
def test_shard_is_stable_and_in_range(session_id, shards):
    shard = keys.shard_of(session_id, shards)
    assert 0 <= shard < shards
    assert shard == keys.shard_of(session_id, shards)


def test_cursor_round_trip():
    cursor = keys.Cursor(kind="sessions", state={"g": 3, "p": ["2026-11-22T08:00:00.000000Z#abc", None, "done"]})
    token = keys.cursor_encode(cursor)
    assert keys.cursor_decode(token, kind="sessions") == cursor


def test_tampered_cursor_is_rejected():
    token = keys.cursor_encode(keys.Cursor(kind="sessions", state={"g": 1}))
    body, _, signature = token.rpartition(":")
    forged = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1] + ":" + signature
    with pytest.raises(InvalidCursor):
        keys.cursor_decode(forged, kind="sessions")
    with pytest.raises(InvalidCursor):
        keys.cursor_decode("not-a-cursor", kind="sessions")


def test_cursor_of_another_listing_is_rejected():
    token = keys.cursor_encode(keys.Cursor(kind="turns", state={"before": 5}))
    with pytest.raises(InvalidCursor):
        keys.cursor_decode(token, kind="sessions")


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,20}", fullmatch=True),
)
def test_started_sort_keys_parse_back_to_their_time_and_id(moment, session_id):
    assert keys.started_sk_parse(keys.started_sk(moment, session_id)) == (moment, session_id)


@pytest.mark.parametrize("value", [
    None, 7, ["2026-11-20T08:00:00.000000Z#abc"], "", "abc", "2026-11-20#abc", "2026-11-20T08:00:00Z#abc",
    "2026-11-20T08:00:00.000000Z#", "2026-11-20T08:00:00.000000Z#bad id", "2026-11-20T08:00:00.000000Z#abc\n",
    "2026-11-20T08:00:00.000000Z#a#b", "2026-13-40T08:00:00.000000Z#abc",
])
def test_anything_else_is_not_a_started_sort_key(value):
    with pytest.raises(ValueError):
        keys.started_sk_parse(value)
    assert not keys.cursor_started_sk(value)


SHAPE = {"n": keys.cursor_int(1, 9), "t": keys.cursor_optional(keys.cursor_text(5)),
         "l": keys.cursor_list(keys.cursor_started_sk, max_length=2)}


def test_a_cursor_state_of_the_declared_shape_decodes():
    state = {"n": 3, "t": None, "l": ["2026-11-20T08:00:00.000000Z#abc"]}
    token = keys.cursor_encode(keys.Cursor(kind="k", state=state))
    assert keys.cursor_decode(token, kind="k", shape=SHAPE).state == state


@pytest.mark.parametrize("state", [
    {"n": 3, "t": None},  # a key missing
    {"n": 3, "t": None, "l": [], "x": 1},  # a key too many
    {"n": True, "t": None, "l": []},  # JSON true is not the number 1
    {"n": 3.0, "t": None, "l": []},
    {"n": 10, "t": None, "l": []},
    {"n": 3, "t": "toolong", "l": []},
    {"n": 3, "t": 5, "l": []},
    {"n": 3, "t": None, "l": "2026-11-20T08:00:00.000000Z#abc"},
    {"n": 3, "t": None, "l": ["x"]},
    {"n": 3, "t": None, "l": ["2026-11-20T08:00:00.000000Z#abc"] * 3},
])
def test_a_signed_cursor_state_of_another_shape_is_invalid(state):
    token = keys.cursor_encode(keys.Cursor(kind="k", state=state))
    with pytest.raises(InvalidCursor) as info:
        keys.cursor_decode(token, kind="k", shape=SHAPE)
    assert info.value.field == "cursor"
