"""Bench data: loaded with the product's bulk loader (parallel batch writes), only when missing.

Each data set lives in its own table; a marker item records that it was loaded completely, so a
reused stack (``BENCH_DYNAMODB_ENDPOINT`` or ``--ddb-dir``) does not load it twice.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from typing import Iterable

from .stats import Progress, say

LINES = [
    ("user", "Hi, I finished Chainsaw Man vol. {n} — can you recommend something similar?"),
    ("assistant", "If you liked it, I recommend Dandadan vol. 1 and Jujutsu Kaisen vol. {n}; both are in stock."),
    ("user", "Please add Frieren volumes 1-3 to my cart. Is One Piece {n} out yet?"),
    ("assistant", "I've added Frieren vols 1 to 3 to your cart. One Piece vol. {n} releases next month; you can pre-order it."),
    ("user", "My order of Blue Lock vol. {n} still hasn't arrived."),
    ("assistant", "Sorry about that — I'll check the tracking and get back to you."),
]
CHANNELS = ("web", "app", "line", "email", "voice")


def turns(count: int, offset: int = 0) -> list[tuple[str, str]]:
    return [(LINES[(i + offset) % len(LINES)][0], LINES[(i + offset) % len(LINES)][1].format(n=1 + (i + offset) % 40))
            for i in range(count)]


def marker_id(name: str) -> str:
    return f"benchmarker{name}".replace("-", "")


def loaded(name: str) -> bool:
    from sessions_app import keys
    from sessions_app.models import SessionMeta

    try:
        SessionMeta.get(keys.session_pk(marker_id(name)), keys.META_SK, consistent_read=True)
        return True
    except SessionMeta.DoesNotExist:
        return False


def mark_loaded(name: str) -> None:
    from sessions_app.services.bulk import SessionSpec, sessions_bulk_load

    # A closed session from 2000: outside every default listing window, so it never shows up.
    sessions_bulk_load(specs=[SessionSpec("benchmarker", "web", datetime(2000, 1, 1, tzinfo=timezone.utc), [],
                                          status="closed", session_id=marker_id(name))])


def use_table(table: str) -> None:
    """Point this process's models at ``table`` (created if missing)."""
    from django.conf import settings

    from sessions_app.services.table import table_ensure

    settings.DYNAMODB_TABLE = table
    table_ensure(table_name=table)


def load(name: str, specs: Iterable, *, total_sessions: int, total_turns: int, threads: int = 16) -> tuple[int, int]:
    from django.conf import settings

    from sessions_app.services.bulk import sessions_bulk_load

    from sessions_app import dynamo

    # Bulk loads go straight to DynamoDB (the DAX client is not what is measured here). A load is
    # not timed per request: DynamoDB Local writing 25 items into ten indexes may take longer
    # than the app's 3 s read timeout on a busy machine, so the load waits longer.
    saved, settings.DAX_ENDPOINTS = settings.DAX_ENDPOINTS, []
    saved_timeout, settings.DYNAMODB_READ_TIMEOUT = settings.DYNAMODB_READ_TIMEOUT, 30.0
    dynamo.reset_connections()
    try:
        progress = Progress(f"load {name}", total_sessions, "sessions")
        done = sessions_bulk_load(specs=specs, threads=threads,
                                  progress=lambda s, t: progress.update(s, f"{t:,}/{total_turns:,} turns"))
        progress.done(done[0], f"{done[1]:,} turns")
        mark_loaded(name)
    finally:
        settings.DAX_ENDPOINTS = saved
        settings.DYNAMODB_READ_TIMEOUT = saved_timeout
        dynamo.reset_connections()
    return done


def context_sessions(table: str, count: int, turns_each: int = 30) -> list[str]:
    """``count`` sessions of ``turns_each`` turns (the context reads the last 20)."""
    from sessions_app.services.bulk import SessionSpec

    use_table(table)
    ids = [f"benchctx{i:06d}" for i in range(count)]
    name = f"{table}-{count}x{turns_each}"
    if loaded(name):
        say(f"{table}: {count} sessions already loaded")
        return ids
    now = datetime.now(timezone.utc) - timedelta(hours=2)
    specs = (SessionSpec(f"cust{i % 500:04d}", CHANNELS[i % 5], now + timedelta(seconds=i), turns(turns_each, i),
                         session_id=sid) for i, sid in enumerate(ids))
    load(name, specs, total_sessions=count, total_turns=count * turns_each)
    return ids


def staff_sessions(table: str, *, sessions: int, turns_each: int, big_turns: int, days: int = 20,
                   seed: int = 7) -> dict:
    """The staff-pages data set: ``sessions`` sessions over the last ``days`` days (statuses 10 %
    active, 5 % handed off, 85 % closed; five channels; ten sessions per customer; summary states
    about 45 % fresh, 20 % stale, 3 % pending, 2 % failed, the rest none) with ``turns_each``
    turns on average, plus one session of ``big_turns`` turns."""
    from sessions_app.services.bulk import SessionSpec

    use_table(table)
    big_id = "benchbig000001"
    info = {"table": table, "sessions": sessions, "turns_each": turns_each, "big_session": big_id,
            "big_turns": big_turns, "customers": max(1, sessions // 10)}
    name = f"{table}-{sessions}x{turns_each}-{big_turns}-summary-states"
    if loaded(name):
        say(f"{table}: {sessions:,} sessions already loaded")
        return info
    rng = random.Random(seed)
    now = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)

    def specs():
        yield SessionSpec("custbig", "web", now - timedelta(hours=1), turns(big_turns), session_id=big_id,
                          seconds_between_turns=1)
        for i in range(sessions - 1):
            roll = rng.random()
            status = "active" if roll < 0.10 else "handed_off" if roll < 0.15 else "closed"
            # ceil of an exponential with mean m - 0.5 has mean m (to within 0.01 for m ≥ 2), so
            # the data set holds the turns it claims: 10 per session → 1,000,000 at 100,000.
            count = max(1, math.ceil(rng.expovariate(1 / (turns_each - 0.5)))) if turns_each > 1 else 1
            started = now - timedelta(seconds=rng.uniform(0, days * 86400))
            state = rng.random()
            summary = {}
            if state < 0.45:
                summary = {"summary_through": count}
            elif state < 0.65 and count > 1:
                summary = {"summary_through": count - 1}
            elif state < 0.68:
                summary = {"summary_mark": "pending"}
            elif state < 0.70:
                summary = {"summary_mark": "failed"}
            yield SessionSpec(f"cust{rng.randrange(info['customers']):06d}", CHANNELS[i % 5], started,
                              turns(count, i), status=status, session_id=f"benchs{i:07d}", **summary)

    load(name, specs(), total_sessions=sessions, total_turns=sessions * turns_each + big_turns)
    return info


def SessionSpec_for(session_id: str, i: int, turn_count: int):
    """An active session with ``turn_count`` turns, started a little while ago."""
    from sessions_app.services.bulk import SessionSpec

    started = datetime.now(timezone.utc) - timedelta(minutes=30)
    return SessionSpec(f"custap{i % 1000:04d}", CHANNELS[i % 5], started, turns(turn_count, i), session_id=session_id)
