import threading

import pytest

from sessions_app import keys, selectors, services
from sessions_app.exceptions import ClientMsgIdConflict, InvalidInput, SessionClosed, SessionNotFound
from sessions_app.models import ChatItem, Turn
from tests.builders import make_session, msg_id
from tests.fixtures.read_paths import ddb  # noqa: F401  (each test runs direct and through DAX)


def _stored_turns(session_id):
    return list(Turn.query(keys.session_pk(session_id), Turn.sk.startswith(keys.TURN_PREFIX), consistent_read=True))


def test_concurrent_appends_get_dense_unique_sequence_numbers(ddb):
    meta = make_session()
    errors = []
    start = threading.Barrier(20)

    def append(n):
        try:
            start.wait()
            services.turn_write(session_id=meta.session_id, role="user", text=f"message {n}", client_msg_id=f"c-{n}")
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    turns = _stored_turns(meta.session_id)
    assert [t.seq for t in turns] == list(range(1, 21))
    assert sorted(t.text for t in turns) == sorted(f"message {n}" for n in range(20))
    assert selectors.session_get(session_id=meta.session_id, consistent=True).turn_count == 20


def test_append_with_same_client_msg_id_returns_stored_turn_and_writes_nothing(ddb):
    meta = make_session(turns=2)
    first = services.turn_write(session_id=meta.session_id, role="user", text="hello", client_msg_id="dup-1")
    before = list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True))
    again = services.turn_write(session_id=meta.session_id, role="user", text="hello", client_msg_id="dup-1")
    after = list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True))
    assert first.created and not again.created
    assert again.turn.seq == first.turn.seq == 3
    assert [(i.sk, i.type) for i in after] == [(i.sk, i.type) for i in before]
    assert selectors.session_get(session_id=meta.session_id, consistent=True).turn_count == 3


def test_concurrent_retries_of_one_message_store_it_once(ddb):
    meta = make_session()
    results = []
    start = threading.Barrier(8)

    def append():
        start.wait()
        results.append(services.turn_write(session_id=meta.session_id, role="user", text="once", client_msg_id="same"))

    threads = [threading.Thread(target=append) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.created for r in results) == 1
    assert {r.turn.seq for r in results} == {1}
    assert [t.seq for t in _stored_turns(meta.session_id)] == [1]


def test_append_to_unknown_session_raises_not_found(ddb):
    with pytest.raises(SessionNotFound):
        services.turn_write(session_id="no-such-session", role="user", text="hi", client_msg_id=msg_id())


def test_append_to_closed_session_raises_closed_but_replay_still_answers(ddb):
    meta = make_session()
    stored = services.turn_write(session_id=meta.session_id, role="user", text="bye", client_msg_id="last")
    services.session_close(session_id=meta.session_id)
    with pytest.raises(SessionClosed):
        services.turn_write(session_id=meta.session_id, role="user", text="more", client_msg_id=msg_id())
    replay = services.turn_write(session_id=meta.session_id, role="user", text="bye", client_msg_id="last")
    assert not replay.created and replay.turn.seq == stored.turn.seq
    assert len(_stored_turns(meta.session_id)) == 1


@pytest.mark.parametrize("change", [{"text": "something else"}, {"role": "assistant"}])
@pytest.mark.parametrize("closed", [False, True])
def test_a_replay_that_differs_from_the_stored_turn_is_a_conflict_and_writes_nothing(ddb, change, closed):
    meta = make_session()
    services.turn_write(session_id=meta.session_id, role="user", text="hello", client_msg_id="dup-1")
    if closed:
        services.session_close(session_id=meta.session_id)
    before = list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True))
    with pytest.raises(ClientMsgIdConflict) as info:
        services.turn_write(session_id=meta.session_id, **{"role": "user", "text": "hello", **change}, client_msg_id="dup-1")
    assert info.value.field == "client_msg_id" and info.value.code == "client_msg_id_conflict"
    after = list(ChatItem.query(keys.session_pk(meta.session_id), consistent_read=True))
    assert [(i.sk, i.type) for i in after] == [(i.sk, i.type) for i in before]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"role": "robot"}, "role"),
        ({"text": ""}, "text"),
        ({"text": "   "}, "text"),
        ({"text": "x" * (16 * 1024 + 1)}, "text"),
        ({"client_msg_id": ""}, "client_msg_id"),
        ({"client_msg_id": "has space"}, "client_msg_id"),
        ({"latency_ms": -1}, "latency_ms"),
        ({"tokens_in": "many"}, "tokens_in"),
        ({"tokens_out": 2.5}, "tokens_out"),
        ({"latency_ms": float("nan")}, "latency_ms"),
        ({"latency_ms": 1e308}, "latency_ms"),
    ],
)
def test_invalid_append_names_the_field_and_writes_nothing(ddb, kwargs, field):
    meta = make_session()
    args = {"session_id": meta.session_id, "role": "user", "text": "ok", "client_msg_id": msg_id()} | kwargs
    with pytest.raises(InvalidInput) as info:
        services.turn_write(**args)
    assert info.value.field == field
    assert _stored_turns(meta.session_id) == []


@pytest.mark.parametrize(
    "text",
    [
        "ワンピースの最新刊はありますか？",
        "🎉📚 鬼滅の刃 全巻セット 🗡️",
        "mixed: Attack on Titan 進撃の巨人 vol. 34 ✨",
        "長" * 5000,  # 15,000 bytes of Japanese
        ("Chainsaw Man volume 12 — " * 1400)[:32 * 1024],
    ],
)
def test_turn_text_round_trips_through_compression(ddb, settings, text):
    settings.TURN_TEXT_MAX_BYTES = 64 * 1024
    meta = make_session()
    services.turn_write(session_id=meta.session_id, role="assistant", text=text, client_msg_id=msg_id())
    [turn] = _stored_turns(meta.session_id)
    assert turn.text == text
    raw = Turn._get_connection().get_item(meta.pk, range_key=turn.sk, consistent_read=True)["Item"]["text"]
    assert "B" in raw  # stored as a binary value, not as the plain string
    if len(text.encode()) > 1000:
        assert len(raw["B"]) < len(text.encode())  # compressed


def test_turns_page_walks_newest_first_without_gaps(ddb):
    meta = make_session(turns=23)
    # Through DAX, META read right after a transaction may still be the pre-transaction item
    # (background refresh); staff pages page from the META they were given.
    current = selectors.session_get(session_id=meta.session_id, consistent=True)
    seen, cursor = [], None
    while True:
        page = selectors.turns_page(session_id=meta.session_id, cursor=cursor, limit=10, meta=current)
        seen += [t.seq for t in page.turns]
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == list(range(23, 0, -1))


@pytest.mark.parametrize("forge", [
    lambda sid: [1],
    lambda sid: {"session": sid},
    lambda sid: {"session": sid, "before": "5"},
    lambda sid: {"session": sid, "before": True},
    lambda sid: {"session": sid, "before": 5.0},
    lambda sid: {"session": sid, "before": 1},
    lambda sid: {"session": sid, "before": -3},
    lambda sid: {"session": sid, "before": 10**11},
    lambda sid: {"session": sid, "before": 5, "extra": 1},
    lambda sid: {"session": [sid], "before": 5},
    lambda sid: {"session": "someone-else", "before": 5},
])
def test_a_signed_turns_cursor_with_a_forged_state_is_an_invalid_cursor(ddb, forge):
    from sessions_app.exceptions import InvalidCursor

    meta = make_session(turns=3)
    forged = keys.cursor_encode(keys.Cursor(kind=selectors.sessions.TURNS_CURSOR, state=forge(meta.session_id)))
    with pytest.raises(InvalidCursor) as info:
        selectors.turns_page(session_id=meta.session_id, cursor=forged, limit=2)
    assert info.value.field == "cursor"


def test_context_read_returns_last_turns_oldest_first(ddb):
    meta = make_session(turns=7)
    ctx = selectors.context_read(session_id=meta.session_id, turns=3, min_seq=7)
    assert [t.seq for t in ctx.turns] == [5, 6, 7]
    assert ctx.meta.turn_count == 7 and ctx.summary is None


def test_a_store_error_that_is_not_a_lost_race_is_raised_at_once_not_retried(ddb, read_path, settings):
    """An item over DynamoDB's 400 KB limit is a ValidationException from the transaction itself."""
    import secrets

    from pynamodb.exceptions import TransactWriteError

    settings.TURN_TEXT_MAX_BYTES = 4_000_000
    meta = make_session()
    with pytest.raises(TransactWriteError) as info:
        services.turn_write(session_id=meta.session_id, role="user", text=secrets.token_hex(600_000), client_msg_id=msg_id())
    assert info.value.cause_response_code not in ("TransactionCanceledException", "TransactionConflictException")
    assert _stored_turns(meta.session_id) == []


def test_latency_is_stored_at_microsecond_resolution(ddb):
    meta = make_session()
    services.turn_write(session_id=meta.session_id, role="assistant", text="x", client_msg_id=msg_id(), latency_ms=1e-200)
    services.turn_write(session_id=meta.session_id, role="assistant", text="y", client_msg_id=msg_id(), latency_ms=12.3456789)
    assert [t.latency_ms for t in _stored_turns(meta.session_id)] == [0.0, 12.346]
