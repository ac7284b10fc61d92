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
