import random
import threading
import time

import pytest

from sessions_app.realtime import (
    context_cache_forget,
    context_cache_get,
    context_cache_hit_ratio,
    context_cache_invalidate,
    context_cache_put,
    context_cache_stats,
    context_cache_turn_written,
)


def test_nothing_cached_is_a_miss_without_hint(rt):
    read = context_cache_get(session_id="s1", variant="t20")
    assert read.payload is None and read.hint is None and not read.degraded


def test_put_then_get_serves_the_payload_and_the_hint(rt, settings):
    assert context_cache_put(session_id="s1", variant="t20", seq=3, payload=b"ctx|with|bars")
    read = context_cache_get(session_id="s1", variant="t20")
    assert read.payload == b"ctx|with|bars" and read.hint == 3
    assert 0 < rt.ttl("ctx:s1") <= settings.CONTEXT_CACHE_TTL


def test_variants_are_cached_independently(rt):
    context_cache_put(session_id="s1", variant="t20", seq=3, payload=b"twenty")
    assert context_cache_get(session_id="s1", variant="t5").payload is None
    context_cache_put(session_id="s1", variant="t5", seq=3, payload=b"five")
    assert context_cache_get(session_id="s1", variant="t20").payload == b"twenty"
    assert context_cache_get(session_id="s1", variant="t5").payload == b"five"


def test_a_written_turn_drops_every_variant_and_raises_the_hint(rt):
    context_cache_put(session_id="s1", variant="t20", seq=3, payload=b"old")
    context_cache_put(session_id="s1", variant="t5", seq=3, payload=b"old")
    context_cache_turn_written(session_id="s1", seq=4)
    for variant in ["t20", "t5"]:
        read = context_cache_get(session_id="s1", variant=variant)
        assert read.payload is None and read.hint == 4
    assert rt.hkeys("ctx:s1") == [b"seq"]
    assert rt.ttl("ctx:s1") > 0


def test_turn_written_never_lowers_the_hint(rt):
    context_cache_turn_written(session_id="s1", seq=7)
    context_cache_turn_written(session_id="s1", seq=5)  # a late, slower writer
    assert context_cache_get(session_id="s1", variant="t20").hint == 7


def test_a_reader_that_loaded_before_a_write_cannot_install_its_old_context(rt):
    # Reader loads turns 1..4 from the store; meanwhile turn 5 is written.
    context_cache_turn_written(session_id="s1", seq=5)
    assert context_cache_put(session_id="s1", variant="t20", seq=4, payload=b"up to 4") is False
    assert context_cache_get(session_id="s1", variant="t20").payload is None
    assert context_cache_put(session_id="s1", variant="t20", seq=5, payload=b"up to 5") is True
    assert context_cache_get(session_id="s1", variant="t20").payload == b"up to 5"


def test_a_payload_older_than_the_hint_is_never_served(rt):
    context_cache_put(session_id="s1", variant="t20", seq=4, payload=b"up to 4")
    rt.hset("ctx:s1", "seq", 5)  # hint raised by a writer whose invalidation we raced
    assert context_cache_get(session_id="s1", variant="t20").payload is None


def test_min_seq_enforces_the_callers_own_last_append(rt):
    # E.g. turn_written was lost while Redis was unreachable: the hint is stale, the caller isn't.
    context_cache_put(session_id="s1", variant="t20", seq=4, payload=b"up to 4")
    assert context_cache_get(session_id="s1", variant="t20", min_seq=5).payload is None
    assert context_cache_get(session_id="s1", variant="t20", min_seq=4).payload == b"up to 4"


def test_invalidate_drops_variants_but_keeps_the_hint(rt):
    context_cache_put(session_id="s1", variant="t20", seq=6, payload=b"x")
    context_cache_invalidate(session_id="s1")
    read = context_cache_get(session_id="s1", variant="t20")
    assert read.payload is None and read.hint == 6
    # The kept hint still guards against an older reader's install.
    assert context_cache_put(session_id="s1", variant="t20", seq=5, payload=b"old") is False


def test_forget_removes_everything(rt):
    context_cache_put(session_id="s1", variant="t20", seq=6, payload=b"x")
    context_cache_forget(session_id="s1")
    assert not rt.exists("ctx:s1")


def test_the_hint_field_is_not_a_variant(rt):
    with pytest.raises(ValueError):
        context_cache_put(session_id="s1", variant="seq", seq=1, payload=b"x")


def test_hits_and_misses_are_counted_for_the_console(rt):
    assert context_cache_hit_ratio() is None  # no lookups yet
    context_cache_get(session_id="s1", variant="t20")  # miss
    context_cache_put(session_id="s1", variant="t20", seq=1, payload=b"x")
    for _ in range(3):
        context_cache_get(session_id="s1", variant="t20")  # hits
    assert context_cache_hit_ratio() == 0.75
    minutes = context_cache_stats(minutes=2)
    assert sum(m.hits for m in minutes) == 3 and sum(m.misses for m in minutes) == 1
    assert all(rt.ttl(k) > 0 for k in rt.keys("stats:ctx:*"))


class FakeStore:
    """Stands in for DynamoDB: durable turns, written under a lock, read with a delay."""

    def __init__(self):
        self._lock = threading.Lock()
        self.last_seq = 0

    def append(self) -> int:
        with self._lock:
            self.last_seq += 1
            return self.last_seq

    def load(self) -> int:
        seq = self.last_seq
        time.sleep(random.uniform(0, 0.002))  # a slow query widens the read/put race
        return seq


def _context_load(store: FakeStore, session_id: str) -> tuple[int, bool]:
    """The read path as the services will write it: cache, else store then put."""
    read = context_cache_get(session_id=session_id, variant="t20")
    if read.payload is not None:
        return int(read.payload), True
    seq = store.load()
    context_cache_put(session_id=session_id, variant="t20", seq=seq, payload=b"%d" % seq)
    return seq, False


def test_writers_always_read_their_own_writes_under_concurrent_readers(rt):
    store, stop, failures, hits = FakeStore(), threading.Event(), [], []

    def writer():
        for _ in range(40):
            seq = store.append()
            context_cache_turn_written(session_id="s1", seq=seq)
            seen, _ = _context_load(store, "s1")
            if seen < seq:
                failures.append((seq, seen))
            time.sleep(random.uniform(0, 0.003))

    def reader():
        while not stop.is_set():
            _, hit = _context_load(store, "s1")
            hits.append(hit)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    writers = [threading.Thread(target=writer) for _ in range(2)]
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join(60)
    stop.set()
    for t in readers:
        t.join(60)
    assert failures == []
    assert any(hits), "the cache never served anything: the test proved nothing"
