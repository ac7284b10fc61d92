import logging
import threading

import pytest

from sessions_app.exceptions import SessionLocked
from sessions_app.realtime import session_write_lock


def test_lock_is_held_inside_the_block_and_released_after(rt):
    with session_write_lock(session_id="s1") as state:
        assert state.held and not state.degraded
        assert rt.exists("lock:session:s1")
        assert 0 < rt.pttl("lock:session:s1") <= 5000
    assert not rt.exists("lock:session:s1")


def test_sequential_writers_each_get_the_lock(rt):
    for _ in range(3):
        with session_write_lock(session_id="s1") as state:
            assert state.held


def test_different_sessions_do_not_contend(rt):
    with session_write_lock(session_id="a"), session_write_lock(session_id="b") as state:
        assert state.held


def test_contended_lock_raises_session_locked_after_the_wait(rt, settings):
    settings.SESSION_LOCK_WAIT = 0.1
    holding, done = threading.Event(), threading.Event()

    def holder():
        with session_write_lock(session_id="s1"):
            holding.set()
            done.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert holding.wait(10)
        with pytest.raises(SessionLocked):
            with session_write_lock(session_id="s1"):
                pytest.fail("entered a lock another writer holds")
    finally:
        done.set()
        t.join(10)
    # The holder's release still works after someone else gave up waiting.
    assert not rt.exists("lock:session:s1")


def test_waiter_gets_the_lock_once_the_holder_releases(rt, settings):
    settings.SESSION_LOCK_WAIT = 5.0
    holding, release = threading.Event(), threading.Event()
    order = []

    def holder():
        with session_write_lock(session_id="s1"):
            holding.set()
            release.wait(10)
            order.append("holder done")

    t = threading.Thread(target=holder)
    t.start()
    assert holding.wait(10)
    threading.Timer(0.1, release.set).start()
    with session_write_lock(session_id="s1") as state:
        order.append("waiter in")
        assert state.held
    t.join(10)
    assert order == ["holder done", "waiter in"]


def test_lock_that_expired_mid_block_is_logged_not_raised(rt, settings, caplog):
    settings.SESSION_LOCK_TIMEOUT = 0.1
    with caplog.at_level(logging.WARNING, logger="sessions_app.realtime"):
        with session_write_lock(session_id="s1"):
            # Simulate a slow write: the lock expires and another writer takes it.
            rt.delete("lock:session:s1")
            rt.set("lock:session:s1", "someone-else", px=5000)
    assert rt.get("lock:session:s1") == b"someone-else"  # the other writer's lock is untouched
    assert "expired before release" in caplog.text


def test_a_crashed_holder_frees_the_lock_after_its_timeout(rt, settings):
    settings.SESSION_LOCK_TIMEOUT = 0.2
    settings.SESSION_LOCK_WAIT = 2.0
    # A holder that acquired the same key and died without releasing.
    assert rt.set("lock:session:s1", "dead-holder", px=200, nx=True)
    with session_write_lock(session_id="s1") as state:
        assert state.held


def test_exceptions_inside_the_block_still_release(rt):
    with pytest.raises(RuntimeError):
        with session_write_lock(session_id="s1"):
            raise RuntimeError("write failed")
    assert not rt.exists("lock:session:s1")
