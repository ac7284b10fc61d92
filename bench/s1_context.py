"""Scenario 1: context load for the same sessions, DynamoDB direct vs DAX hit vs Redis hit,
in-process (the selector) and over HTTP (gunicorn, production worker settings).

Every sample is one context load of one session; each round visits every session once and, for
each session, runs all six variants in a random order — so the variants share the same sessions,
the same moment and the same machine noise. Before a "direct" or "DAX" sample the session's
Redis context entry is deleted (outside the timed section) so the load goes to the store; the
Redis variant is always a hit because every load re-installs the entry. DynamoDB direct =
``DAX_ENDPOINTS`` empty (in-process: switched per call; HTTP: a second gunicorn without DAX).

Beside them, the raw floors (bench/floors.py): the very calls each session's direct and DAX
loads made, replayed by a bare botocore client and a bare amazondax client in the same rounds, so
"app CPU / floor CPU" shows the app's own overhead over the clients (the issue's targets: ≤ 1.25×).
With the DAX client tuning on (``DAX_CLIENT_TUNING``) the amazondax floor is the tuned client too:
the ratio is the app's overhead, not the client's.
"""

from __future__ import annotations

import json
import random
import time
import urllib.request

from . import loadgen
from .stats import Progress, lat, ratio, say, summarize

TABLE = "bench-context"
VARIANTS = ("inproc-direct", "inproc-dax", "inproc-redis", "http-direct", "http-dax", "http-redis",
            "floor-direct", "floor-dax")
# p50 ratios "direct / hit" (at least), per place; and "app CPU / raw floor CPU" (at most).
TARGETS = {"inproc": {"redis": 15.0, "dax": 4.0}, "http": {"redis": 10.0, "dax": 4.0}}
CPU_OVER_FLOOR_MAX = 1.25


def dax_stats(url: str | None) -> dict | None:
    if not url:
        return None
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def run(stack, ctx, *, sessions: int, rounds: int) -> dict:
    from django.conf import settings

    from sessions_app.realtime import redis_connection
    from sessions_app.realtime.keys import context_key
    from sessions_app.selectors import context_load

    from . import data
    from .floors import Floors, recorded_calls

    ids = data.context_sessions(TABLE, sessions)
    redis = redis_connection()
    dax_on, dax_off = [stack.dax_endpoint], []
    app, direct = ctx.server("app"), ctx.server("direct")
    token = ctx.read_token

    def inproc(variant: str, sid: str):
        settings.DAX_ENDPOINTS = dax_off if variant == "inproc-direct" else dax_on
        if variant != "inproc-redis":
            redis.delete(context_key(session_id=sid))
        cpu0, t0 = time.process_time(), time.perf_counter()
        loaded = context_load(session_id=sid)
        ms = (time.perf_counter() - t0) * 1000
        return ms, time.process_time() - cpu0, loaded.source

    def http(variant: str, sid: str):
        server = direct if variant == "http-direct" else app
        if variant != "http-redis":
            redis.delete(context_key(session_id=sid))
        raw = loadgen.build("GET", f"/api/v1/sessions/{sid}/context", token=token)
        cpu0 = server.cpu_seconds()
        status, ms, response = loadgen.timed(server.port, raw)
        cpu = server.cpu_seconds() - cpu0
        source = loadgen.header(response, "X-Context-Source") if status == 200 else f"HTTP {status}"
        return ms, cpu, source

    floors = Floors(dynamodb_endpoint=settings.DYNAMODB_ENDPOINT, dax_endpoints=dax_on,
                    region=settings.AWS_REGION, timeout=settings.DAX_REQUEST_TIMEOUT)
    recorded: dict[tuple[str, str], list] = {}

    def floor(variant: str, sid: str):
        kind = variant.split("-")[1]
        ms, used = floors.replay(recorded[(kind, sid)])
        return ms, used, expected[kind]  # a floor has no source of its own to check

    expected = {"direct": "dynamodb", "dax": "dax", "redis": "redis"}
    samples = {v: [] for v in VARIANTS}
    cpu = {v: 0.0 for v in VARIANTS}
    wrong = {v: 0 for v in VARIANTS}

    def one(variant: str, sid: str, record: bool) -> None:
        if variant.startswith("floor"):
            ms, used, source = floor(variant, sid)
        else:
            ms, used, source = (inproc if variant.startswith("inproc") else http)(variant, sid)
        if not record:
            return
        if source != expected[variant.split("-")[1]]:
            wrong[variant] += 1
            return
        samples[variant].append(ms)
        cpu[variant] += used

    say(f"scenario 1: warming DAX and Redis for {len(ids)} sessions")
    for sid in ids:  # warm-up: fills DAX's item and query caches and both servers' connections
        for variant in VARIANTS:
            if variant.startswith("floor"):
                continue
            one(variant, sid, record=False)
        # The floors' calls: what a store load of this session sends, as the app sent it.
        for kind in ("direct", "dax"):
            with recorded_calls() as calls:
                inproc(f"inproc-{kind}", sid)
            recorded[(kind, sid)] = calls
        for variant in ("floor-direct", "floor-dax"):
            one(variant, sid, record=False)
    dax_before = dax_stats(stack.dax_stats_url)
    rng = random.Random(1)
    progress = Progress("scenario 1", rounds * len(ids) * len(VARIANTS), "loads")
    done = 0
    for _ in range(rounds):
        order = list(ids)
        rng.shuffle(order)
        for sid in order:
            variants = list(VARIANTS)
            rng.shuffle(variants)
            for variant in variants:
                one(variant, sid, record=True)
                done += 1
            progress.update(done)
    progress.done(done)
    settings.DAX_ENDPOINTS = dax_on
    dax_after = dax_stats(stack.dax_stats_url)
    floors.close()
    calls_per_load = {kind: sorted({len(recorded[(kind, sid)]) for sid in ids}) for kind in ("direct", "dax")}
    operations = {kind: sorted({c.operation for sid in ids for c in recorded[(kind, sid)]}) for kind in ("direct", "dax")}

    out = {"sessions": len(ids), "rounds": rounds, "turns_per_context": settings.CONTEXT_DEFAULT_TURNS,
           "variants": {}, "ratios": {}, "wrong_source": wrong,
           "floor_calls_per_load": calls_per_load, "floor_operations": operations,
           "dax_client_tuning": bool(getattr(settings, "DAX_CLIENT_TUNING", False))}
    for variant in VARIANTS:
        s = summarize(samples[variant])
        s["cpu_ms_per_request"] = round(cpu[variant] / len(samples[variant]) * 1000, 3) if samples[variant] else None
        out["variants"][variant] = s
    for where in ("inproc", "http"):
        d, x, r = (out["variants"][f"{where}-{k}"] for k in ("direct", "dax", "redis"))
        out["ratios"][where] = {
            "redis_vs_direct_p50": ratio(d.get("p50"), r.get("p50")),
            "dax_vs_direct_p50": ratio(d.get("p50"), x.get("p50")),
            "redis_vs_direct_p95": ratio(d.get("p95"), r.get("p95")),
            "dax_vs_direct_p95": ratio(d.get("p95"), x.get("p95")),
        }
    fd, fx = out["variants"]["floor-direct"], out["variants"]["floor-dax"]
    out["ratios"]["cpu_over_floor"] = {
        "direct": ratio(out["variants"]["inproc-direct"].get("cpu_ms_per_request"), fd.get("cpu_ms_per_request")),
        "dax": ratio(out["variants"]["inproc-dax"].get("cpu_ms_per_request"), fx.get("cpu_ms_per_request")),
    }
    if dax_before and dax_after:
        out["dax_node_during_run"] = {k: dax_after.get(k, 0) - dax_before.get(k, 0)
                                      for k in ("ItemCacheHits", "ItemCacheMisses", "QueryCacheHits", "QueryCacheMisses")
                                      if isinstance(dax_after.get(k), (int, float))}
    out["rows"] = rows(out)
    return out


def rows(out: dict) -> list[list[str]]:
    result = []
    for where, label in (("inproc", "in-process"), ("http", "HTTP")):
        for kind, name in (("direct", "DynamoDB direct"), ("dax", "DAX hit"), ("redis", "Redis hit")):
            s = out["variants"][f"{where}-{kind}"]
            result.append([f"1 context {label}", f"{name} p50/p95/p99", lat(s),
                           f"CPU {s.get('cpu_ms_per_request', '–')} ms/req", ""])
        r = out["ratios"][where]
        for kind in ("dax", "redis"):
            target = TARGETS[where][kind]
            value = r[f"{kind}_vs_direct_p50"]
            verdict = "–" if value is None else ("met" if value >= target else "MISSED")
            result.append([f"1 context {label}", f"{'Redis' if kind == 'redis' else 'DAX'} hit vs direct (p50 ratio)",
                           f"{value}×" if value else "–", f"≥ {target:g}×", verdict])
    for kind, name in (("direct", "raw botocore floor"), ("dax", "raw amazondax floor")):
        s = out["variants"][f"floor-{kind}"]
        result.append(["1 context floor", f"{name} p50/p95/p99", lat(s),
                       f"CPU {s.get('cpu_ms_per_request', '–')} ms/set of {out['floor_calls_per_load'][kind]} calls", ""])
    for kind, name in (("direct", "direct CPU / botocore floor"), ("dax", "DAX-hit CPU / amazondax floor")):
        value = out["ratios"]["cpu_over_floor"][kind]
        verdict = "–" if value is None else ("met" if value <= CPU_OVER_FLOOR_MAX else "MISSED")
        result.append(["1 context floor", name, f"{value}×" if value else "–", f"≤ {CPU_OVER_FLOOR_MAX:g}×", verdict])
    return result
