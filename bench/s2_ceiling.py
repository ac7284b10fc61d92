"""Scenario 2: the ceiling — a bare Django JSON view (``/bench/ping``, same middleware, same
gunicorn) vs warm context loads (Redis hit) on the same server, in the same run.

Closed loop with ``concurrency`` clients; time slices of the two variants alternate (random order
within each round), so both see the same machine. Throughput per variant is the median over its
slices; the percentage is warm context req/s ÷ bare req/s.
"""

from __future__ import annotations

import random

from . import loadgen
from .stats import Progress, lat, ratio, say, slices_summary

TARGET_PCT = 60.0


def run(stack, ctx, *, concurrency: int, rounds: int, seconds: float) -> dict:
    from .s1_context import TABLE
    from . import data

    ids = data.context_sessions(TABLE, ctx.context_sessions)
    app = ctx.server("app")
    token = ctx.read_token
    ping = loadgen.build("GET", "/bench/ping")
    contexts = [loadgen.build("GET", f"/api/v1/sessions/{sid}/context", token=token) for sid in ids]
    variants = {
        "bare": lambda i: ping,
        "context-warm": lambda i: contexts[i % len(contexts)],
    }
    say(f"scenario 2: warming ({len(ids)} contexts into Redis)")
    for raw in contexts:
        loadgen.send(app.port, raw)
    loadgen.closed_loop(app.port, variants["bare"], concurrency=concurrency, seconds=min(1.0, seconds))

    slices = {name: [] for name in variants}
    latencies = {name: [] for name in variants}
    cpu = {name: [0.0, 0] for name in variants}
    errors = {name: 0 for name in variants}
    rng = random.Random(2)
    progress = Progress("scenario 2", rounds * len(variants), "slices")
    done = 0
    for _ in range(rounds):
        order = list(variants)
        rng.shuffle(order)
        for name in order:
            cpu0 = app.cpu_seconds()
            result = loadgen.closed_loop(app.port, variants[name], concurrency=concurrency, seconds=seconds)
            cpu[name][0] += app.cpu_seconds() - cpu0
            cpu[name][1] += sum(result.statuses.values())
            slices[name].append(result.per_second)
            latencies[name].extend(result.latencies_ms)
            errors[name] += sum(n for status, n in result.statuses.items() if not 200 <= status < 300)
            done += 1
            progress.update(done, f"{name}: {result.per_second:,.0f} req/s")
    progress.done(done)

    out = {"concurrency": concurrency, "rounds": rounds, "slice_seconds": seconds, "workers": len(app.workers),
           "variants": {}}
    for name in variants:
        out["variants"][name] = {
            **slices_summary(slices[name], latencies[name], errors[name]),
            "cpu_ms_per_request": round(cpu[name][0] / cpu[name][1] * 1000, 3) if cpu[name][1] else None,
        }
    bare = out["variants"]["bare"]["req_per_s_median"]
    warm = out["variants"]["context-warm"]["req_per_s_median"]
    pct = round(100 * ratio(warm, bare), 1) if ratio(warm, bare) else None
    out["warm_pct_of_bare"] = pct
    out["rows"] = [
        ["2 ceiling", f"bare JSON view, {concurrency} clients", f"{bare:,.0f} req/s",
         f"p50/p95/p99 {lat(out['variants']['bare']['latency_ms'])}, CPU {out['variants']['bare']['cpu_ms_per_request']} ms/req", ""],
        ["2 ceiling", f"warm context load (Redis hit), {concurrency} clients", f"{warm:,.0f} req/s",
         f"p50/p95/p99 {lat(out['variants']['context-warm']['latency_ms'])}, CPU {out['variants']['context-warm']['cpu_ms_per_request']} ms/req", ""],
        ["2 ceiling", "warm context throughput / bare view", f"{pct} %" if pct is not None else "–",
         f"≥ {TARGET_PCT:g} %", "–" if pct is None else ("met" if pct >= TARGET_PCT else "MISSED")],
    ]
    return out
