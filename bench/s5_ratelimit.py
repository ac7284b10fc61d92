"""Scenario 5: the rate limiter — decisions per second and round trips per decision, against a
raw ``EVALSHA`` of a no-op script on the same Redis, through the same client and pool.

Time slices of the two variants alternate (random order within each round), at 1 and at 8
threads. Round trips are counted on the client (redis-py socket sends) in a separate counting
pass, so the counter never runs inside a timed slice; Redis-side commands per decision come from
``INFO stats`` ``total_commands_processed`` (which includes the commands a script runs).
"""

from __future__ import annotations

import random
import threading
import time
import uuid

from .stats import Progress, lat, ratio, summarize


def _threads(fn, *, concurrency: int, seconds: float) -> tuple[int, float, list[float]]:
    stop_at = time.perf_counter() + seconds
    lock = threading.Lock()
    latencies: list[float] = []
    barrier = threading.Barrier(concurrency + 1)

    def worker(n: int) -> None:
        mine = []
        i = 0
        barrier.wait()
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            fn(n, i)
            mine.append((time.perf_counter() - t0) * 1000)
            i += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return len(latencies), time.perf_counter() - began, latencies


def run(stack, ctx, *, rounds: int, seconds: float) -> dict:
    import redis.connection

    from sessions_app.realtime import rate_limit_hit, redis_connection

    client = redis_connection()
    noop_sha = client.script_load("return 0")
    run_id = uuid.uuid4().hex[:6]
    customers = [f"benchrl{run_id}{i:04d}" for i in range(1000)]

    def limiter(n: int, i: int) -> None:
        decision = rate_limit_hit(customer_id=customers[(n * 7919 + i) % len(customers)], limit=10**9, window_seconds=60)
        assert decision.allowed

    def noop(n: int, i: int) -> None:
        client.evalsha(noop_sha, 0)

    variants = {"rate_limit_hit": limiter, "evalsha-noop": noop}
    for fn in variants.values():  # warm-up: script cache, pool connections
        _threads(fn, concurrency=8, seconds=0.2)

    # Counting pass: client sends and server commands per call (not timed).
    counts = {}
    original = redis.connection.AbstractConnection.send_packed_command
    sends = [0]

    def counting(self, command, check_health=True):
        sends[0] += 1
        return original(self, command, check_health)

    for name, fn in variants.items():
        n = 200
        info0 = client.info("stats")["total_commands_processed"]
        redis.connection.AbstractConnection.send_packed_command = counting
        sends[0] = 0
        try:
            for i in range(n):
                fn(0, i)
            client_sends = sends[0]
        finally:
            redis.connection.AbstractConnection.send_packed_command = original
        info1 = client.info("stats")["total_commands_processed"]
        counts[name] = {"round_trips_per_call": client_sends / n,
                        "redis_commands_per_call": round((info1 - info0 - 1) / n, 2)}

    results = {}
    rng = random.Random(5)
    concurrencies = (1, 8)
    progress = Progress("scenario 5", rounds * len(variants) * len(concurrencies), "slices")
    done = 0
    for c in concurrencies:
        for name in variants:
            results[(name, c)] = {"rates": [], "lat": []}
    for _ in range(rounds):
        order = [(name, c) for name in variants for c in concurrencies]
        rng.shuffle(order)
        for name, c in order:
            count, elapsed, latencies = _threads(variants[name], concurrency=c, seconds=seconds)
            results[(name, c)]["rates"].append(count / elapsed)
            results[(name, c)]["lat"].extend(latencies)
            done += 1
            progress.update(done)
    progress.done(done)

    out = {"rounds": rounds, "slice_seconds": seconds, "counts": counts, "variants": {}}
    rows = []
    for c in concurrencies:
        for name in variants:
            rates = sorted(results[(name, c)]["rates"])
            out["variants"][f"{name}@{c}"] = {
                "per_second_median": round(rates[len(rates) // 2], 1),
                "per_second_slices": [round(r, 1) for r in results[(name, c)]["rates"]],
                "latency_ms": summarize(results[(name, c)]["lat"]),
            }
        hit = out["variants"][f"rate_limit_hit@{c}"]
        raw = out["variants"][f"evalsha-noop@{c}"]
        share = ratio(hit["per_second_median"], raw["per_second_median"])
        out["variants"][f"ratio@{c}"] = share
        rows.append(["5 rate limiter", f"decisions/s, {c} thread{'s' if c > 1 else ''}",
                     f"{hit['per_second_median']:,.0f}/s",
                     f"no-op EVALSHA {raw['per_second_median']:,.0f}/s → {round(100 * share) if share else '–'} % of it; "
                     f"p50/p95/p99 {lat(hit['latency_ms'])} vs {lat(raw['latency_ms'])}", ""])
    rows.append(["5 rate limiter", "round trips per decision",
                 f"{counts['rate_limit_hit']['round_trips_per_call']:g}",
                 f"no-op: {counts['evalsha-noop']['round_trips_per_call']:g}; Redis commands per decision "
                 f"{counts['rate_limit_hit']['redis_commands_per_call']:g} (in one script)", ""])
    out["rows"] = rows
    return out
