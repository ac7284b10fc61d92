"""Scenario 9: transcript search — per engine, side by side in one run:

- index throughput: the demo generator's manga-shop turns (English and Japanese), applied in
  batches of 500 documents as the change-feed indexer applies them (``IndexBatch``), turns/s;
- query latency at that size, p50/p95, for short Japanese (one or two characters), long Japanese,
  English and filtered (channel + status + a week of start days) queries, newest first, a page of
  50. The engines are asked in alternation, query by query, so a slow moment of the machine hits
  both alike.

The data is the demo's vocabulary, which repeats: common terms (在庫, stock) match a large share
of all turns, the worst case for a newest-first page (every match is sorted). Each query's
number of matches is reported beside its latency.

SQLite runs in a file of its own; PostgreSQL on a server this scenario starts (devtools.procs),
tuned as the tests' one (fsync off): the index rate is an upper bound for a durable server.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

from .stats import say, summarize

BATCH = 500
QUERIES = {  # each kind from very common to rare in the demo's vocabulary
    "short ja": ["巻", "在庫", "予約", "表紙", "特装", "発送"],
    "long ja": ["ワンピース 105巻", "紙の本でお願いします いつ届きますか", "前回の注文で表紙が破れていました",
                "特装版は完売 再入荷", "鬼滅の刃 23巻の発売日"],
    "english": ["in stock", "one piece volume 105", "damaged cover", "ship to canada", "demon slayer box set"],
}
FILTERED = ["在庫", "stock", "予約"]


def _batches(turns: int, seed: int = 9):
    """IndexBatches of about BATCH documents from the demo generator, made as they are applied
    (10M turns never sit in memory at once); start days spread over half a year (the
    PostgreSQL engine partitions by month). The same seed gives every engine the same data."""
    from sessions_app.clock import utcnow
    from sessions_app.demo import demo_sessions
    from sessions_app.search.engine import IndexBatch, SessionDoc, TurnDoc

    rng = random.Random(seed)
    now = utcnow()
    per, chunk = 10, 10_000  # turns per session; sessions generated at a time
    left = max(1, turns // per)
    batch = IndexBatch()
    round_ = 0
    while left > 0:
        specs = demo_sessions(count=min(chunk, left), now=now, seed=seed + round_)
        left -= len(specs)
        round_ += 1
        for spec in specs:
            sid = uuid.UUID(int=rng.getrandbits(128)).hex
            started = now - timedelta(days=rng.randint(0, 180), minutes=rng.randint(0, 1440))
            batch.sessions.append(SessionDoc(session_id=sid, customer_id=spec.customer_id, channel=spec.channel,
                                             status=spec.status, started_at=started,
                                             expires_at=now + timedelta(days=365)))
            for seq in range(1, per + 1):
                role, text = spec.turns[(seq - 1) % len(spec.turns)]
                batch.docs.append(TurnDoc(session_id=sid, seq=seq, role=role, text=text,
                                          created_at=started + timedelta(seconds=30 * seq)))
            if len(batch.docs) >= BATCH:
                yield batch
                batch = IndexBatch()
    if batch:
        yield batch


def _index(engine, turns: int) -> dict:
    started, cpu = time.perf_counter(), time.process_time()
    written = 0
    for batch in _batches(turns):
        written += engine.apply(batch)
    seconds = time.perf_counter() - started
    return {"docs": written, "seconds": round(seconds, 1), "turns_per_s": round(written / seconds),
            "cpu_ms_per_turn_here": round((time.process_time() - cpu) * 1000 / max(written, 1), 3)}


def run(stack, ctx, *, turns: int, rounds: int, engines: tuple[str, ...] = ("sqlite", "postgres")) -> dict:
    from sessions_app.clock import utcnow
    from sessions_app.search.engine import SearchFilter
    from sessions_app.search.sqlite_engine import SqliteEngine

    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    work.chmod(0o711)  # PostgreSQL runs as its own OS user and must reach its data dir below
    built, servers = {}, []
    try:
        if "sqlite" in engines:
            built["sqlite"] = SqliteEngine(work / "search.sqlite3")
        if "postgres" in engines:
            from devtools import procs
            from sessions_app.search.postgres_engine import PostgresEngine

            port = procs.free_port()
            server = procs.start_postgres(port, data_dir=work / "pg")
            servers.append(server)
            built["postgres"] = PostgresEngine(procs.postgres_dsn(port))
        out: dict = {"turns": turns, "engines": {}}
        for name, engine in built.items():
            engine.ensure()
            say(f"  {name}: indexing {turns:,} demo-generator turns in batches of {BATCH}")
            out["engines"][name] = {"index": _index(engine, turns), "queries": {}}
            say(f"  {name}: {out['engines'][name]['index']['turns_per_s']:,} turns/s")
        today = utcnow().date()
        week = SearchFilter(day_from=today - timedelta(days=30), day_to=today - timedelta(days=24), channel="line",
                            status="closed")
        kinds = [(kind, q, None) for kind, qs in QUERIES.items() for q in qs] + [("filtered", q, week) for q in FILTERED]
        samples = {name: {kind: [] for kind, _, _ in kinds} for name in built}
        matches = {name: {} for name in built}
        for name, engine in built.items():  # a first pass warms caches and counts matches
            for kind, query, filters in kinds:
                matches[name][f"{kind}: {query}"] = len(engine.search(query, filters=filters, limit=10**7).hits)
        say(f"  querying: {len(kinds)} queries × {rounds} rounds, engines alternating")
        for _ in range(rounds):
            for kind, query, filters in kinds:
                for name, engine in built.items():
                    started = time.perf_counter()
                    engine.search(query, filters=filters, limit=50)
                    samples[name][kind].append((time.perf_counter() - started) * 1000)
        rows = []
        for name, engine in built.items():
            result = out["engines"][name]
            result["matches"] = matches[name]
            index = result["index"]
            rows.append([f"9 search ({name})", f"index {index['docs']:,} turns", f"{index['turns_per_s']:,} turns/s",
                         f"{index['seconds']} s, batches of {BATCH}", ""])
            for kind in samples[name]:
                summary = summarize(samples[name][kind])
                result["queries"][kind] = summary
                hits = [matches[name][f"{k}: {q}"] for k, q, _ in kinds if k == kind]
                rows.append([f"9 search ({name})", f"{kind} query, {index['docs']:,} turns",
                             f"p50 {summary['p50']:.1f} ms / p95 {summary['p95']:.1f} ms",
                             f"{summary['n']} queries; matches {min(hits):,}–{max(hits):,}", ""])
        out["rows"] = rows
        return out
    finally:
        for engine in built.values():
            engine.close()
        if servers:
            from devtools import procs

            for server in servers:
                procs.stop_postgres(server)
        shutil.rmtree(work, ignore_errors=True)
