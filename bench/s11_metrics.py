"""Scenario 11: what recording the Prometheus metrics costs — scenario 2's warm context load
(``GET /api/v1/sessions/<id>/context``, a Redis hit) with metrics on vs off, interleaved.

Two gunicorn servers with the production worker settings (the bench's ``start_server``: sync
workers, ``WEB_CONCURRENCY`` of them, plus ``-c python:mangaassist.gunicorn_conf`` as `make run`
starts them, when that module exists), the same code, table (``bench-context``, DAX on), Redis and
database; they differ in two variables only:

* ``on``: ``METRICS_ENABLED=1`` and ``PROMETHEUS_MULTIPROC_DIR`` a fresh empty directory of its
  own (multiprocess mode, as in production: every worker writes memory-mapped files there);
* ``off``: ``METRICS_ENABLED=0`` and no ``PROMETHEUS_MULTIPROC_DIR`` (every recording call is a
  no-op; sessions_app/observability/metrics.py reads both variables at import).

Both get the same random ``METRICS_TOKEN`` so that nothing else differs. The sessions' contexts are
loaded once through each server first (into Redis; every answer must be a 200 from Redis), then
each server gets a short closed loop to warm its workers. Then ``rounds`` rounds of one
``seconds``-long slice per variant, driven at saturation by ``loadgen.closed_loop`` with
``concurrency`` clients (scenario 2's 8), the order alternating per round (on, off | off, on | …)
so a drift of the machine's other load falls on both alike. Per variant: req/s (median of its
slices: the figure compared), p50/p95/p99 of all its requests, gunicorn workers' CPU ms per
request (``Server.cpu_seconds``), and the cores the machine's other processes used during its
slices (this box is shared). The verdict: req/s on ÷ off ≥ 0.97 (metrics cost ≤ 3 %). Beside
it, the per-round ratios (a round's two slices are seconds apart) show how much of that is noise,
and their median over the *quiet* rounds (both slices with the other processes under
``QUIET_CORES``) is the figure least disturbed by a neighbour's burst; CPU per request is the
steadier sign of the cost itself. Many short slices (full: 12 × 2.5 s per variant) pair better
than few long ones when the neighbours' load comes in bursts.

Once after the load, ``GET /metrics`` on the ``on`` server (``Authorization: Bearer`` the token)
``SCRAPES`` times in a row on the idle server: response time (the first scrape, median, p95), body
size, series count, workers' CPU per scrape, and whether the scrape saw the load (the context
route's request count vs every request the ``on`` server was sent, warm-up included). One scrape
of ``off`` (one worker's own registry) checks that it recorded nothing. A 404 or 401 (the
endpoint or instrumentation not there yet) is reported, never fatal: the load is measured anyway.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import tempfile

from . import loadgen
from .s8_sse import _box_busy_seconds, _tree_cpu_seconds
from .stats import Progress, lat, ratio, say, slices_summary, summarize

TARGET = 0.97  # req/s with metrics ÷ without: the metrics cost at most 3 % of the throughput
QUIET_CORES = 0.25  # a slice during which the machine's other processes used less than this is "quiet"
SCRAPES = 20  # enough for the workers' CPU (read in 10 ms clock ticks) to say something per scrape
CONTEXT_ROUTE = "context"  # a substring of the context endpoint's URL pattern (the route label)
HTTP_HISTOGRAM = "mangaassist_http_request_duration_seconds"


def run(stack, ctx, *, concurrency: int, rounds: int, seconds: float) -> dict:
    from . import data
    from .s1_context import TABLE

    ids = data.context_sessions(TABLE, ctx.context_sessions)
    token = ctx.read_token
    metrics_token = secrets.token_urlsafe(24)
    multiproc_dir = tempfile.mkdtemp(prefix="prometheus-on-", dir=stack.work)
    conf = ("-c", "python:mangaassist.gunicorn_conf") if importlib.util.find_spec("mangaassist.gunicorn_conf") else ()
    envs = {
        "on": {"METRICS_ENABLED": "1", "PROMETHEUS_MULTIPROC_DIR": multiproc_dir, "METRICS_TOKEN": metrics_token},
        "off": {"METRICS_ENABLED": "0", "PROMETHEUS_MULTIPROC_DIR": None, "METRICS_TOKEN": metrics_token},
    }
    say(f"scenario 11: starting gunicorn servers metrics-on and metrics-off (multiprocess dir {multiproc_dir})")
    servers = {name: stack.start_server(f"metrics-{name}", dax=True, table=TABLE, env=env, gunicorn_args=conf)
               for name, env in envs.items()}
    stack.wait_servers()

    contexts = [loadgen.build("GET", f"/api/v1/sessions/{sid}/context", token=token) for sid in ids]
    make = lambda i: contexts[i % len(contexts)]  # noqa: E731
    say(f"scenario 11: warming ({len(ids)} contexts into Redis, through both servers)")
    not_redis = {name: 0 for name in servers}
    sent = {name: 0 for name in servers}
    for _ in range(2):  # the first pass may fill Redis; the second must be all hits
        for name, server in servers.items():
            not_redis[name] = 0
            for raw in contexts:
                status, response = loadgen.send(server.port, raw)
                sent[name] += 1
                if status != 200 or loadgen.header(response, "X-Context-Source") != "redis":
                    not_redis[name] += 1
    if any(n == len(contexts) for n in not_redis.values()):
        raise RuntimeError(f"warm context loads failed (answers not a 200 from Redis, per server: {not_redis})")
    for name, server in servers.items():
        warm = loadgen.closed_loop(server.port, make, concurrency=concurrency, seconds=min(1.0, seconds))
        sent[name] += sum(warm.statuses.values())

    slices = {name: [] for name in servers}
    latencies = {name: [] for name in servers}
    cpu = {name: [0.0, 0] for name in servers}  # worker CPU seconds, requests
    cpu_slices = {name: [] for name in servers}  # ms per request, per slice
    others = {name: [0.0, 0.0] for name in servers}  # the box's busy time minus the bench's, wall seconds
    others_slices = {name: [] for name in servers}  # the same per slice, in cores
    errors = {name: 0 for name in servers}
    ok = {name: 0 for name in servers}
    progress = Progress("scenario 11", rounds * len(servers), "slices")
    done = 0
    for r in range(rounds):
        for name in (("on", "off") if r % 2 == 0 else ("off", "on")):
            server = servers[name]
            cpu0, box0, tree0 = server.cpu_seconds(), _box_busy_seconds(), _tree_cpu_seconds()
            result = loadgen.closed_loop(server.port, make, concurrency=concurrency, seconds=seconds)
            used, requests = server.cpu_seconds() - cpu0, sum(result.statuses.values())
            cpu[name][0] += used
            cpu[name][1] += requests
            cpu_slices[name].append(round(used / requests * 1000, 3) if requests else None)
            busy = max(0.0, (_box_busy_seconds() - box0) - (_tree_cpu_seconds() - tree0))  # ticks: can dip below 0
            others[name][0] += busy
            others[name][1] += result.elapsed
            others_slices[name].append(round(busy / result.elapsed, 2) if result.elapsed else None)
            sent[name] += sum(result.statuses.values())
            ok[name] += result.ok
            slices[name].append(result.per_second)
            latencies[name].extend(result.latencies_ms)
            errors[name] += sum(n for status, n in result.statuses.items() if not 200 <= status < 300)
            done += 1
            progress.update(done, f"{name}: {result.per_second:,.0f} req/s")
    progress.done(done)

    out = {"concurrency": concurrency, "rounds": rounds, "slice_seconds": seconds, "sessions": len(ids),
           "workers": {name: len(s.workers) for name, s in servers.items()}, "gunicorn_args": list(conf),
           "env": {name: {k: ("<random>" if k == "METRICS_TOKEN" else v) for k, v in env.items()}
                   for name, env in envs.items()},
           "order": ["on, off" if r % 2 == 0 else "off, on" for r in range(rounds)],
           "warm_not_redis": not_redis, "variants": {}}
    for name in servers:
        out["variants"][name] = {
            **slices_summary(slices[name], latencies[name], errors[name]),
            "cpu_ms_per_request": round(cpu[name][0] / cpu[name][1] * 1000, 3) if cpu[name][1] else None,
            "cpu_ms_per_request_slices": cpu_slices[name],
            "other_processes_cores": round(others[name][0] / others[name][1], 2) if others[name][1] else None,
            "other_processes_cores_slices": others_slices[name],
        }
    on, off = out["variants"]["on"], out["variants"]["off"]
    # Per round (its two slices are seconds apart): round r's on slice ÷ its off slice; "quiet"
    # rounds are those whose two slices both had the machine's other processes under QUIET_CORES.
    paired = [a / b if b else None for a, b in zip(slices["on"], slices["off"])]
    ordered = sorted(x for x in paired if x is not None)
    calm = [i for i, (a, b) in enumerate(zip(others_slices["on"], others_slices["off"]))
            if a is not None and b is not None and max(a, b) < QUIET_CORES and paired[i] is not None]
    quiet = sorted(paired[i] for i in calm)
    quiet_cpu = sorted(cpu_slices["on"][i] / cpu_slices["off"][i] for i in calm
                       if cpu_slices["on"][i] and cpu_slices["off"][i])
    out["ratios"] = {
        "req_per_s": ratio(on["req_per_s_median"], off["req_per_s_median"]),
        "req_per_s_per_round": [None if x is None else round(x, 3) for x in paired],
        "req_per_s_per_round_median": round(ordered[len(ordered) // 2], 3) if ordered else None,
        "req_per_s_quiet_rounds": len(quiet),
        "req_per_s_quiet_rounds_median": round(quiet[len(quiet) // 2], 3) if quiet else None,
        "cpu_ms_per_request_quiet_rounds_median": round(quiet_cpu[len(quiet_cpu) // 2], 3) if quiet_cpu else None,
        "p50": ratio(on["latency_ms"].get("p50"), off["latency_ms"].get("p50")),
        "p95": ratio(on["latency_ms"].get("p95"), off["latency_ms"].get("p95")),
        "cpu_ms_per_request": ratio(on["cpu_ms_per_request"], off["cpu_ms_per_request"]),
    }
    value, calm_value = out["ratios"]["req_per_s"], out["ratios"]["req_per_s_quiet_rounds_median"]
    out["target_req_per_s_ratio_min"] = TARGET
    out["verdict"] = "–" if value is None else ("met" if value >= TARGET else "MISSED")
    out["verdict_quiet_rounds"] = "–" if calm_value is None else ("met" if calm_value >= TARGET else "MISSED")

    busy = [x for name in servers for x in others_slices[name] if x is not None]
    out["note"] = (f"shared machine: other processes used {sum(busy) / len(busy):.2f} cores on average during the "
                   f"slices (max {max(busy):.2f}); {out['ratios']['req_per_s_quiet_rounds']} of {rounds} rounds "
                   f"were quiet (< {QUIET_CORES:g} cores)") if busy else None
    out["scrape"] = scrape(servers["on"], metrics_token, completed=ok["on"], sent=sent["on"])
    out["scrape_off"] = scrape(servers["off"], metrics_token, completed=0, sent=sent["off"], repeat=1)
    out["multiproc_dir_files"] = sorted(os.listdir(multiproc_dir))
    out["rows"] = rows(out)
    return out


def scrape(server, metrics_token: str, *, completed: int, sent: int, repeat: int = SCRAPES) -> dict:
    """``GET /metrics`` ``repeat`` times in a row on an idle server: status, time, size, and how
    many context requests its histogram counted (``completed``: 2xx answers of the measured
    slices; ``sent``: every request this server was sent, warm-up included)."""
    raw = loadgen.build("GET", "/metrics", token=metrics_token)
    times, status, body = [], 0, b""
    cpu0 = server.cpu_seconds()
    for _ in range(repeat):
        status, ms, response = loadgen.timed(server.port, raw)
        times.append(ms)
        body = response.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in response else b""
    out = {"status": status, "available": status == 200, "scrapes": repeat, "first_ms": round(times[0], 3),
           "latency_ms": summarize(times), "bytes": len(body),
           "cpu_ms_per_scrape": round((server.cpu_seconds() - cpu0) / repeat * 1000, 3),
           "requests_sent": sent, "requests_completed_in_slices": completed}
    if status != 200:
        say(f"scenario 11: GET /metrics on {server.name} answered HTTP {status} — reported, not measured")
        return out
    out.update(parse(body.decode("utf-8", "replace")))
    return out


def parse(text: str) -> dict:
    """Families, series (sample lines) and the context route's request count of an exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    families = series = 0
    context_requests = 0.0
    try:
        for family in text_string_to_metric_families(text):
            families += 1
            for sample in family.samples:
                series += 1
                if (sample.name == f"{HTTP_HISTOGRAM}_count"
                        and CONTEXT_ROUTE in sample.labels.get("route", "")):
                    context_requests += sample.value
    except ValueError as exc:  # a body that is not the text format: say so, keep the figures
        return {"parse_error": str(exc), "families": families, "series": series}
    return {"families": families, "series": series, "context_requests_counted": int(context_requests)}


def rows(out: dict) -> list[list[str]]:
    r = out["ratios"]
    per_round = [x for x in r["req_per_s_per_round"] if x is not None]
    result = []
    for name, label in (("on", "metrics on (multiprocess)"), ("off", "metrics off")):
        v = out["variants"][name]
        result.append([
            "11 metrics", f"warm context load (Redis hit), {label}, {out['concurrency']} clients",
            f"{v['req_per_s_median']:,.0f} req/s" if v["req_per_s_median"] else "–",
            f"p50/p95/p99 {lat(v['latency_ms'])}, CPU {v['cpu_ms_per_request']} ms/req; median of {out['rounds']} × "
            f"{out['slice_seconds']:g} s slices; other processes {v['other_processes_cores']} cores; "
            f"errors {v['errors']}", ""])
    result.append([
        "11 metrics", "throughput metrics on / off", f"{r['req_per_s']}" if r["req_per_s"] else "–",
        f"≥ {TARGET:g} (metrics cost ≤ 3 %), ratio of the medians; per round: median "
        f"{r['req_per_s_per_round_median']}, range {min(per_round, default=0):.3f}–{max(per_round, default=0):.3f}; "
        f"p50 / p95 ratios {r['p50']} / {r['p95']}; CPU/req ratio {r['cpu_ms_per_request']}", out["verdict"]])
    result.append([
        "11 metrics", "throughput metrics on / off, quiet rounds",
        f"{r['req_per_s_quiet_rounds_median']}" if r["req_per_s_quiet_rounds_median"] else "–",
        f"≥ {TARGET:g}; median of the per-round ratios over the {r['req_per_s_quiet_rounds']} of {out['rounds']} "
        f"rounds whose slices had the other processes < {QUIET_CORES:g} cores; their CPU/req ratio "
        f"{r['cpu_ms_per_request_quiet_rounds_median'] or '–'}; {out['note'] or ''}", out["verdict_quiet_rounds"]])
    s, s_off = out["scrape"], out["scrape_off"]
    if s["available"]:
        counted = s.get("context_requests_counted", "–")
        result.append([
            "11 metrics", "GET /metrics on the metrics-on server",
            f"{s['first_ms']:.2f} ms first, {s['latency_ms']['p50']:.2f} ms median",
            f"{s['bytes']:,} bytes, {s.get('families', '–')} families / {s.get('series', '–')} series; "
            f"{s['scrapes']} scrapes, CPU {s['cpu_ms_per_scrape']} ms each, p95 {s['latency_ms']['p95']:.2f} ms; "
            f"context requests counted {counted} of {s['requests_sent']:,} sent (warm-up included); "
            f"the off server counted {s_off.get('context_requests_counted', '–')}", ""])
    else:
        result.append(["11 metrics", "GET /metrics on the metrics-on server", f"HTTP {s['status']}",
                       "endpoint or instrumentation not there: scrape not measured", "–"])
    return result
