import random
import threading
import time
from collections import defaultdict
from datetime import date, timedelta

import pytest
from pynamodb.exceptions import PutError

from sessions_app import dynamo, keys, selectors
from sessions_app.demo import demo_sessions
from sessions_app.exceptions import StoreUnavailable
from sessions_app.models import ChatItem, ClientMessageMarker, SessionMeta, Turn
from sessions_app.services import bulk
from sessions_app.services.bulk import SessionSpec, sessions_bulk_load
from tests.builders import at
from tests.fixtures.read_paths import ddb  # noqa: F401  (each test runs direct and through DAX)


def test_bulk_loaded_demo_sessions_are_complete_and_listed(ddb):
    specs = demo_sessions(count=12, now=at("2026-11-20", 600))
    done, turns = sessions_bulk_load(specs=specs, threads=4)
    assert done == 12 and turns == sum(len(s.turns) for s in specs)
    page = selectors.session_list(day_from=date(2026, 11, 1), day_to=date(2026, 11, 20), limit=50)
    assert len(page.sessions) == 12
    ja = [m for m in page.sessions if m.locale == "ja"]
    for meta in page.sessions:
        stored = list(Turn.query(meta.pk, Turn.sk.startswith(keys.TURN_PREFIX), consistent_read=True))
        assert [t.seq for t in stored] == list(range(1, meta.turn_count + 1))
        assert (meta.status == "closed") == (meta.gsi3pk is None)
    if ja:
        ctx = selectors.context_read(session_id=ja[0].session_id, turns=2)
        assert any("巻" in t.text for t in ctx.turns) or any("\u3040" <= ch <= "\u30ff" for t in ctx.turns for ch in t.text)


def test_demo_data_meets_the_demo_size():
    specs = demo_sessions(count=260, now=at("2026-11-20"))
    assert sum(len(s.turns) for s in specs) >= 3000
    assert len({s.customer_id for s in specs}) >= 10
    assert {s.status for s in specs} == {"active", "handed_off", "closed"}
    assert {s.locale for s in specs} == {"en", "ja"}
    assert len({s.channel for s in specs}) >= 3
    assert len({s.started_at.date() for s in specs}) >= 5


# --- packing, ordering, retries and errors --------------------------------------------------------
# Every BatchWriteItem still goes to DynamoDB Local; BatchWrites only watches the requests, and
# where a test asks for it, sends part of a request and answers with the rest as UnprocessedItems,
# which is what DynamoDB does when it cannot take a whole batch.

class BatchWrites:
    def __init__(self, monkeypatch, *, hold_back=lambda number: 0, fail=lambda number: None):
        self.log: list[tuple[str, int, set[tuple[str, str]]]] = []  # ("sent" | "written" | "failed", request, keys)
        self.sizes: list[int] = []
        self.held: set[tuple[str, str]] = set()  # answered as unprocessed at least once
        self.unprocessed: set[tuple[str, str]] = set()  # left unprocessed by DynamoDB Local itself
        self.routes: set[str] = set()
        self._lock = threading.Lock()
        real = dynamo.RoutedConnection._make_api_call

        def make_api_call(connection, operation_name, operation_kwargs):
            if operation_name != "BatchWriteItem":
                return real(connection, operation_name, operation_kwargs)
            [(table, requests)] = operation_kwargs["RequestItems"].items()
            with self._lock:
                number = len(self.sizes)
                self.sizes.append(len(requests))
                self.routes.add(connection.route_for(operation_name, operation_kwargs))
                self.log.append(("sent", number, _keys(requests)))
            if error := fail(number):
                raise error
            keep = max(len(requests) - hold_back(number), 0)
            sent, held = requests[:keep], requests[keep:]
            answer = {}
            if sent:
                try:
                    answer = real(connection, operation_name, {**operation_kwargs, "RequestItems": {table: sent}})
                except Exception:
                    # Timed out on a slow machine: the loader may send these items again.
                    with self._lock:
                        self.log.append(("failed", number, _keys(sent)))
                    raise
            unprocessed = answer.get("UnprocessedItems", {}).get(table, [])
            with self._lock:
                self.log.append(("written", number, _keys(sent) - _keys(unprocessed)))
                self.held |= _keys(held)
                self.unprocessed |= _keys(unprocessed)  # DynamoDB's own
            if held:
                answer = {**answer, "UnprocessedItems": {table: unprocessed + held}}
            return answer

        monkeypatch.setattr(dynamo.RoutedConnection, "_make_api_call", make_api_call)

    def sent_keys(self) -> list[tuple[str, str]]:
        return [key for event, _, batch in self.log if event == "sent" for key in batch]

    def first_sends(self) -> list[int]:
        """Sizes of the requests that carried at least one item for the first time (not resends)."""
        seen: set[tuple[str, str]] = set()
        sizes = []
        for event, _, batch in self.log:
            if event == "sent" and batch - seen:
                sizes.append(len(batch))
                seen |= batch
        return sizes

    def resent_keys(self) -> set[tuple[str, str]]:
        """Keys sent again although no earlier request of theirs failed or came back unprocessed."""
        answered_badly = self.held | self.unprocessed | {key for event, _, batch in self.log if event == "failed" for key in batch}
        seen: set[tuple[str, str]] = set()
        again: set[tuple[str, str]] = set()
        for event, _, batch in self.log:
            if event == "sent":
                again |= (batch & seen) - answered_badly
                seen |= batch
        return again


def _keys(requests) -> set[tuple[str, str]]:
    return {(r["PutRequest"]["Item"]["PK"]["S"], r["PutRequest"]["Item"]["SK"]["S"]) for r in requests}


def assert_each_meta_sent_after_its_items_were_written(log) -> None:
    items_of: dict[str, set] = defaultdict(set)
    for event, _, sent in log:
        if event == "sent":
            for pk, sk in sent:
                if sk != keys.META_SK:
                    items_of[pk].add((pk, sk))
    written: set = set()
    for event, number, batch in log:
        if event == "written":
            written |= batch
            continue
        for pk, sk in batch:
            if sk == keys.META_SK:
                missing = items_of[pk] - written
                assert not missing, f"META of {pk} sent in request {number} before {sorted(missing)} were written"


def specs_of(turn_counts: list[int]) -> list[SessionSpec]:
    start = at("2026-11-20")
    return [
        SessionSpec(f"cust-{i % 7}", "web", start + timedelta(seconds=i),
                    [("user" if n % 2 == 0 else "assistant", f"s{i} turn {n}") for n in range(count)],
                    session_id=f"s{i:05d}")
        for i, count in enumerate(turn_counts)
    ]


def assert_stored_completely(specs: list[SessionSpec]) -> None:
    for spec in specs:
        stored = list(ChatItem.query(keys.session_pk(spec.session_id), consistent_read=True))
        metas = [item for item in stored if isinstance(item, SessionMeta)]
        turns = sorted((t.seq, t.text) for t in stored if isinstance(t, Turn))
        assert len(metas) == 1 and metas[0].turn_count == len(spec.turns), spec.session_id
        assert turns == [(n + 1, text) for n, (_, text) in enumerate(spec.turns)], spec.session_id
        assert sum(isinstance(item, ClientMessageMarker) for item in stored) == len(spec.turns), spec.session_id


@pytest.fixture
def no_backoff(monkeypatch):
    monkeypatch.setattr(bulk, "_BACKOFF_BASE_SECONDS", 0.001)


def test_many_small_sessions_share_full_requests_and_all_arrive(ddb, monkeypatch):
    writes = BatchWrites(monkeypatch)
    specs = specs_of([1] * 200)
    assert sessions_bulk_load(specs=iter(specs), threads=4) == (200, 200)
    assert_stored_completely(specs)
    # 600 items: 24 requests at best (a META never shares a request with its own turn); one
    # request per item group, as before, would have been 400.
    assert 24 <= len(writes.first_sends()) <= 30
    assert max(writes.first_sends()) == bulk.BATCH_WRITE_MAX_ITEMS
    assert not writes.resent_keys()  # nothing sent twice unless its first request failed
    # The DAX bypass is per thread: the pool threads that write must have it on too.
    assert writes.routes == {dynamo.ROUTE_DYNAMODB}


def test_meta_is_sent_only_after_every_item_of_its_session_was_written(ddb, monkeypatch, no_backoff):
    # Every third request comes back with three items unprocessed, so turns of one session land
    # in requests that complete out of order.
    writes = BatchWrites(monkeypatch, hold_back=lambda number: 3 if number % 3 == 0 else 0)
    specs = specs_of([1, 0, 13, 2, 40, 1, 1, 0, 7, 25, 3, 12] * 6)
    assert sessions_bulk_load(specs=specs, threads=4) == (len(specs), sum(len(s.turns) for s in specs))
    assert_each_meta_sent_after_its_items_were_written(writes.log)
    assert_stored_completely(specs)
    assert max(writes.sizes) <= bulk.BATCH_WRITE_MAX_ITEMS


def test_session_larger_than_one_request_loads_between_small_ones(ddb, monkeypatch):
    writes = BatchWrites(monkeypatch)
    specs = specs_of([1, 2, 300, 1, 2])  # 600 turn and marker items for the middle one
    assert sessions_bulk_load(specs=specs, threads=3) == (5, 306)
    assert_stored_completely(specs)
    assert_each_meta_sent_after_its_items_were_written(writes.log)
    assert max(writes.sizes) == bulk.BATCH_WRITE_MAX_ITEMS


def test_unprocessed_items_are_resent_until_written(ddb, monkeypatch, no_backoff):
    writes = BatchWrites(monkeypatch, hold_back=lambda number: 10 if number < 4 else 0)
    specs = specs_of([4] * 30)
    assert sessions_bulk_load(specs=specs, threads=2) == (30, 120)
    assert len(writes.held) >= 10
    sent = writes.sent_keys()
    assert all(sent.count(key) >= 2 for key in writes.held)
    assert writes.held <= {key for event, _, batch in writes.log if event == "written" for key in batch}
    assert_each_meta_sent_after_its_items_were_written(writes.log)
    assert_stored_completely(specs)


def test_items_never_processed_raise_instead_of_being_dropped(ddb, monkeypatch, no_backoff):
    BatchWrites(monkeypatch, hold_back=lambda number: bulk.BATCH_WRITE_MAX_ITEMS)  # DynamoDB takes nothing
    with pytest.raises(StoreUnavailable, match="unprocessed"):
        sessions_bulk_load(specs=specs_of([30]), threads=2)
    with pytest.raises(SessionMeta.DoesNotExist):
        SessionMeta.get(keys.session_pk("s00000"), keys.META_SK, consistent_read=True)
    assert not _pool_threads()


def test_a_request_that_timed_out_is_sent_again_and_nothing_is_lost(ddb, monkeypatch, no_backoff):
    """A BatchWriteItem whose answer never came (StoreUnavailable after botocore's retries, as a
    busy DynamoDB answers late) is backed off and resent: puts of the same items are idempotent."""
    writes = BatchWrites(monkeypatch, fail=lambda number: StoreUnavailable("DynamoDB BatchWriteItem failed: Read timeout")
                         if number in (1, 2) else None)
    specs = specs_of([3] * 20)
    sessions_bulk_load(specs=specs, threads=2)
    assert len(writes.sizes) >= 3
    assert_stored_completely(specs)


def test_a_request_that_keeps_timing_out_fails_the_load(ddb, monkeypatch, no_backoff):
    BatchWrites(monkeypatch, fail=lambda number: StoreUnavailable("DynamoDB BatchWriteItem failed: Read timeout"))
    with pytest.raises(StoreUnavailable, match="times in a row"):
        sessions_bulk_load(specs=specs_of([3] * 4), threads=2)
    assert not _pool_threads()


def test_error_in_the_specs_surfaces_and_the_pool_stops(ddb, monkeypatch):
    writes = BatchWrites(monkeypatch)

    def specs():
        yield from specs_of([2] * 40)
        raise ValueError("bad spec 41")

    with pytest.raises(ValueError, match="bad spec 41"):
        sessions_bulk_load(specs=specs(), threads=4)
    assert not _pool_threads()
    assert_each_meta_sent_after_its_items_were_written(writes.log)


def test_write_error_surfaces_and_the_session_stays_unlisted(ddb):
    # ~450 KB compressed: DynamoDB refuses the item (400 KB limit), and with it its request.
    too_big = random.Random(1).randbytes(450_000).hex()
    specs = specs_of([1] * 10)
    specs[4].turns = [("user", too_big)]
    with pytest.raises(PutError, match="size"):
        sessions_bulk_load(specs=specs, threads=2)
    assert not _pool_threads()
    with pytest.raises(SessionMeta.DoesNotExist):
        SessionMeta.get(keys.session_pk(specs[4].session_id), keys.META_SK, consistent_read=True)


def test_injected_write_failure_surfaces(ddb, monkeypatch):
    BatchWrites(monkeypatch, fail=lambda number: ValueError("boom") if number == 5 else None)
    with pytest.raises(ValueError, match="boom"):
        sessions_bulk_load(specs=specs_of([3] * 100), threads=4)
    assert not _pool_threads()


def test_progress_grows_from_the_callers_thread_while_specs_are_read_lazily(ddb):
    pulled = 0
    calls = []

    def specs():
        nonlocal pulled
        for spec in specs_of([1] * 400):
            pulled += 1
            yield spec

    def progress(sessions, turns):
        calls.append((threading.get_ident(), sessions, turns, pulled))

    assert sessions_bulk_load(specs=specs(), threads=2, progress=progress) == (400, 400)
    assert {ident for ident, *_ in calls} == {threading.get_ident()}
    counts = [(sessions, turns) for _, sessions, turns, _ in calls]
    assert counts == sorted(counts) and counts[-1] == (400, 400)
    # Unfinished sessions are bounded by the batches that may be held at once (4 per thread
    # counting those just completed, plus the one filling), never the whole input.
    assert max(read - sessions for _, sessions, _, read in calls) <= (4 * 2 + 1) * bulk.BATCH_WRITE_MAX_ITEMS
    assert calls[0][3] < 400


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("sessions-bulk-load")]


def test_bulk_loaded_hand_offs_wait_in_the_queue(ddb):
    from sessions_app.selectors.handoff import handoff_queue, handoff_state

    specs = [SessionSpec(customer_id="c1", channel="web", started_at=at("2026-11-20", 60 * i), turns=[("user", "hi")],
                         status="handed_off", handoff_reason=f"reason {i}") for i in range(3)]
    specs.append(SessionSpec(customer_id="c2", channel="web", started_at=at("2026-11-20", 500), turns=[("user", "x")]))
    sessions_bulk_load(specs=specs, threads=2)
    queue = handoff_queue()
    assert [handoff_state(m)["reason"] for m in queue] == ["reason 0", "reason 1", "reason 2"]  # oldest first
    assert all(handoff_state(m)["state"] == "waiting" for m in queue)


def test_meta_is_sent_only_after_its_customer_is_in_the_directory(ddb, monkeypatch):
    # The directory writes run in the pool and are slowed down here, so without the wait the
    # METAs of one-turn sessions would be sent long before them.
    real = dynamo.RoutedConnection._make_api_call
    log: list[tuple[str, str]] = []  # ("directory", customer pk) once written; ("meta", session pk) when sent
    lock = threading.Lock()

    def make_api_call(connection, operation_name, operation_kwargs):
        if operation_name == "BatchWriteItem":
            [requests] = operation_kwargs["RequestItems"].values()
            with lock:
                log.extend(("meta", pk) for pk, sk in _keys(requests) if sk == keys.META_SK)
            return real(connection, operation_name, operation_kwargs)
        answer = real(connection, operation_name, operation_kwargs)
        if operation_name == "UpdateItem" and operation_kwargs["Key"]["SK"]["S"] == keys.CUSTOMER_ITEM_SK:
            time.sleep(0.2)
            with lock:
                log.append(("directory", operation_kwargs["Key"]["PK"]["S"]))
        return answer

    monkeypatch.setattr(dynamo.RoutedConnection, "_make_api_call", make_api_call)
    # Fifteen customers with two sessions each; the second started earlier, so only the first
    # writes the entry, and the second must wait for that write too.
    specs = specs_of([1, 0, 3] * 10)
    for n, spec in enumerate(specs):
        spec.customer_id = f"solo-{n // 2}"
        spec.started_at += timedelta(seconds=100 if n % 2 == 0 else -100)
    assert sessions_bulk_load(specs=specs, threads=4) == (30, 40)
    assert sum(event == "directory" for event, _ in log) == 15
    customer_of = {keys.session_pk(s.session_id): keys.customer_item_pk(s.customer_id) for s in specs}
    written: set[str] = set()
    for event, pk in log:
        if event == "directory":
            written.add(pk)
        else:
            assert customer_of[pk] in written, f"META of {pk} sent before its customer's directory entry was written"
    assert len([pk for event, pk in log if event == "meta"]) == 30
    assert written == set(customer_of.values())
