"""Scenario 8: the live-updates (SSE) server holding 200 streams next to scenario 1's HTTP load.

The load is scenario 1's HTTP context load — ``GET /api/v1/sessions/<id>/context`` on the
production gunicorn with DAX on (server ``app``, table ``bench-context``, the same sessions) —
driven by ``loadgen.closed_loop`` with ``CLIENTS`` closed-loop clients, so it is CPU-bound on this
box and any CPU the streams cost shows up in it. The SSE server is the real process (uvicorn,
``mangaassist.asgi_events``, as `make run` starts it) on the bench's database and Redis, and the
change feed consumer (``manage.py stream_consume``, a subprocess as in scenario 7) follows
``bench-context``'s stream and publishes the live events the streams carry.

1. the consumer starts and drains the table's backlog (the bulk-loaded sessions) first;
2. *idle*: ``streams`` streams opened (a tenth on ``/events/activity``, the rest round-robin over
   session streams of the load's sessions), then ``idle`` seconds with no load and no appends:
   the SSE process's RSS (before any stream / with them) and CPU;
3. ``rounds`` rounds of two ``seconds``-long slices in a random order: *without* streams (the SSE
   server running, no stream open) and *with* the streams open. Both kinds of slice carry the same
   trickle of appends (``POST …/turns`` through the API on the same gunicorn, ``APPEND_RATE`` per
   second round-robin over the sessions that have a stream), so the two differ only in the open
   streams and what they deliver. The streams are opened before and closed after a *with* slice,
   outside its timed part, by a client process of its own (``python -m bench.sse_probe hold``): its
   reads do not share the load generator's GIL. Per variant: context req/s (median over slices),
   p50/p95 (all its requests); in *with* slices, for each append, every stream's receipt of the
   ``turn`` event, timed from just before the POST was sent.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid

from devtools import procs

from . import loadgen
from .s1_context import TABLE
from .consumer import ConsumerProgress, consumer_start, consumer_wait_reading
from .sse_probe import (ACTIVITY, rss_mib, sse_health, sse_server_spawn, sse_wait_ready, stream_paths,
                        viewer_cookie)
from .stack import ROOT, process_cpu_seconds
from .stats import Progress, lat, ratio, say, slices_summary, summarize

CLIENTS = 8  # scenario 2's closed-loop clients: enough to keep the 3 sync workers and both cores busy
APPEND_RATE = 4.0  # appends per second during every slice (both variants)
DRAIN_SECONDS = 2.0  # after a with-streams slice: the last appends' events still arrive
TARGET = 0.10  # with streams within 10 % of without: req/s, p50 and p95


class _Holder:
    """The client process holding the streams open (bench.sse_probe hold)."""

    def __init__(self, port: int, cookie: str, paths: list[str], log_path) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.sse_probe", "hold"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=open(log_path, "ab"),
                                     text=True, start_new_session=True)
        self.proc.stdin.write(json.dumps({"port": port, "cookie": cookie, "paths": paths, "timeout": 60}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        self.opened = json.loads(line) if line else {"subscribed": 0, "errors": ["the client process exited"]}
        if self.opened["subscribed"] != len(paths):
            self.close()
            raise RuntimeError(f"only {self.opened['subscribed']} of {len(paths)} streams opened: {self.opened.get('errors')}")

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.proc.pid)

    def close(self) -> dict:
        result: dict = {}
        try:
            if self.proc.poll() is None:
                self.proc.stdin.write("close\n")
                self.proc.stdin.flush()
                line = self.proc.stdout.readline()
                result = json.loads(line) if line else {}
        except (OSError, ValueError):
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            procs.kill_group(self.proc)
            self.proc.wait(5)
        return result


class _Appender(threading.Thread):
    """Open loop: one ``POST …/turns`` every 1/rate s, round-robin over ``sessions``; keeps
    (session, seq, sent at, answered at) of each 201."""

    def __init__(self, port: int, token: str, sessions: list[str], rate: float, start_index: int) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.sessions, self.rate = port, token, sessions, rate
        self.index = start_index
        self.appends: list[tuple[str, int, float, float]] = []
        self.latencies_ms: list[float] = []
        self.failed = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        began = time.monotonic()
        k = 0
        while not self._stop_event.is_set():
            sid = self.sessions[self.index % len(self.sessions)]
            self.index += 1
            body = json.dumps({"role": "user", "text": "Is Frieren vol. 4 back in stock?",
                               "client_msg_id": uuid.uuid4().hex}).encode()
            raw = loadgen.build("POST", f"/api/v1/sessions/{sid}/turns", token=self.token, body=body)
            sent = time.time()
            status, ms, response = loadgen.timed(self.port, raw)
            if status == 201:
                try:
                    seq = int(json.loads(response.split(b"\r\n\r\n", 1)[1])["seq"])
                    self.appends.append((sid, seq, sent, time.time()))
                    self.latencies_ms.append(ms)
                except (ValueError, KeyError, IndexError):
                    self.failed += 1
            else:
                self.failed += 1
            k += 1
            self._stop_event.wait(max(0.0, began + k / self.rate - time.monotonic()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)


def _box_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (every core, every process), from /proc/stat."""
    from .stack import CLK_TCK

    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK  # all but idle and iowait


def _tree_cpu_seconds() -> float:
    """CPU time of this process and every live descendant (the stack, the servers, the consumer,
    the stream client): what the bench itself costs the machine."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    ours, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in ours:
                ours.add(pid)
                frontier.append(pid)
    return sum(process_cpu_seconds(pid) for pid in ours)


def _wait_no_streams(port: int, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        health = sse_health(port) or {}
        if health.get("streams") == 0:
            return 0
        time.sleep(0.1)
    return (sse_health(port) or {}).get("streams", -1)


def run(stack, ctx, *, sessions: int, streams: int, rounds: int, seconds: float, idle: float) -> dict:
    from . import data

    ids = data.context_sessions(TABLE, sessions)
    app = ctx.server("app")
    read_token, write_token = ctx.read_token, ctx.write_token
    contexts = [loadgen.build("GET", f"/api/v1/sessions/{sid}/context", token=read_token) for sid in ids]
    make = lambda i: contexts[i % len(contexts)]  # noqa: E731
    paths = stream_paths(streams, ids)
    watched = sorted({p.rsplit("/", 1)[1] for p in paths if p != ACTIVITY})
    subscribers = {sid: sum(1 for p in paths if p == f"/events/sessions/{sid}") for sid in watched}
    activity_streams = sum(1 for p in paths if p == ACTIVITY)
    cookie = viewer_cookie()

    # The SSE server, as `make run` starts it, on the bench's database and Redis.
    sse_port = procs.free_port()
    env = dict(os.environ, SSE_MAX_STREAMS=str(streams + 50))
    sse = sse_server_spawn(sse_port, stack.work / "sse.log", env)
    stack.started.append(("SSE server", sse))  # stopped with the stack on an abort, too
    consumer_log = stack.work / "sse-stream-consume.log"
    holder_log = stack.work / "sse-client.log"
    consumer = None
    out: dict = {"sessions": len(ids), "streams": streams, "activity_streams": activity_streams,
                 "session_streams": streams - activity_streams, "watched_sessions": len(watched),
                 "clients": CLIENTS, "append_rate_per_s": APPEND_RATE, "rounds": rounds, "slice_seconds": seconds}
    try:
        sse_wait_ready(sse_port, sse)
        say(f"scenario 8: warming {len(ids)} contexts; starting the change feed consumer on {TABLE}")
        for raw in contexts:
            loadgen.send(app.port, raw)
        t_spawn = time.time()
        consumer = consumer_start(stack, consumer_log, table=TABLE, name="bench-sse")
        consumer_wait_reading(consumer, consumer_log)
        poll = ConsumerProgress(consumer.pid, since=t_spawn)
        t0, r0, _ = poll.sample()
        t1, r1, _ = poll.until_quiet(timeout=300, proc=consumer)
        out["consumer_backlog"] = {"records": r1 - r0, "seconds": round(t1 - t0, 2)}
        loadgen.closed_loop(app.port, make, concurrency=CLIENTS, seconds=1.0)  # warm-up

        # 2. idle: the SSE process with `streams` streams open and nothing happening
        rss_before = rss_mib(sse.pid)
        say(f"scenario 8: opening {streams} streams, {idle:g}s idle")
        holder = _Holder(sse_port, cookie, paths, holder_log)
        try:
            time.sleep(1.0)
            rss_open = rss_mib(sse.pid)
            c0, w0 = process_cpu_seconds(sse.pid), time.monotonic()
            time.sleep(idle)
            idle_cpu = (process_cpu_seconds(sse.pid) - c0) / (time.monotonic() - w0)
            rss_idle = rss_mib(sse.pid)
            health = sse_health(sse_port) or {}
        finally:
            holder.close()
        out["idle"] = {"seconds": idle, "connect_all_s": holder.opened.get("connect_s"),
                       "streams_reported_by_server": health.get("streams"),
                       "rss_mib_before_streams": round(rss_before, 1), "rss_mib_streams_open": round(rss_open, 1),
                       "rss_mib_idle": round(rss_idle, 1),
                       "rss_kib_per_stream": round((rss_idle - rss_before) * 1024 / streams, 1),
                       "cpu_pct_of_a_core": round(idle_cpu * 100, 2)}

        # 3. interleaved slices
        variants = ("without", "with")
        slices = {v: [] for v in variants}
        latencies = {v: [] for v in variants}
        errors = {v: 0 for v in variants}
        sse_cpu = {v: [0.0, 0.0] for v in variants}  # cpu seconds, wall seconds
        app_cpu = {v: [0.0, 0] for v in variants}  # gunicorn workers' cpu seconds, requests
        others_cpu = {v: [0.0, 0.0] for v in variants}  # the box's busy time minus ours, wall seconds
        consumer_cpu = {v: [0.0, 0.0] for v in variants}
        holder_cpu = [0.0, 0.0]
        append_ms = {v: [] for v in variants}
        append_failed = {v: 0 for v in variants}
        delivery = {"session": [], "activity": [], "created_to_receipt": []}
        received = expected = appended_with = duplicates = 0
        streams_left = []
        rng = random.Random(8)
        progress = Progress("scenario 8", rounds * len(variants), "slices")
        done = next_append = 0
        for _ in range(rounds):
            order = list(variants)
            rng.shuffle(order)
            for name in order:
                holder = None
                if name == "with":
                    holder = _Holder(sse_port, cookie, paths, holder_log)
                    time.sleep(0.5)  # the connect burst is over before the slice starts
                else:
                    streams_left.append(_wait_no_streams(sse_port))
                appender = _Appender(app.port, write_token, watched, APPEND_RATE, next_append)
                s0, k0, h0 = process_cpu_seconds(sse.pid), process_cpu_seconds(consumer.pid), \
                    (holder.cpu_seconds() if holder else 0.0)
                a0, b0, t0 = app.cpu_seconds(), _box_busy_seconds(), _tree_cpu_seconds()
                w0 = time.monotonic()
                appender.start()
                result = loadgen.closed_loop(app.port, make, concurrency=CLIENTS, seconds=seconds)
                appender.stop()
                wall = time.monotonic() - w0
                others_cpu[name][0] += (_box_busy_seconds() - b0) - (_tree_cpu_seconds() - t0)
                others_cpu[name][1] += wall
                app_cpu[name][0] += app.cpu_seconds() - a0
                app_cpu[name][1] += sum(result.statuses.values()) + len(appender.appends) + appender.failed
                sse_cpu[name][0] += process_cpu_seconds(sse.pid) - s0
                sse_cpu[name][1] += wall
                consumer_cpu[name][0] += process_cpu_seconds(consumer.pid) - k0
                consumer_cpu[name][1] += wall
                next_append = appender.index
                slices[name].append(result.per_second)
                latencies[name].extend(result.latencies_ms)
                errors[name] += sum(n for status, n in result.statuses.items() if not 200 <= status < 300)
                append_ms[name].extend(appender.latencies_ms)
                append_failed[name] += appender.failed
                if holder is not None:
                    holder_cpu[0] += holder.cpu_seconds() - h0
                    holder_cpu[1] += wall
                    time.sleep(DRAIN_SECONDS)
                    got = holder.close()
                    sent = {(sid, seq): (t_sent, at) for sid, seq, t_sent, at in appender.appends}
                    appended_with += len(sent)
                    expected += sum(subscribers[sid] + activity_streams for sid, _ in sent)
                    seen = set()
                    for index, sid, seq, at_ms, arrived in got.get("arrivals", []):
                        key = (sid, seq)
                        if key not in sent:
                            continue  # a turn appended outside this slice
                        if (index, sid, seq) in seen:
                            duplicates += 1  # at least once: a redelivery
                            continue
                        seen.add((index, sid, seq))
                        received += 1
                        ms = (arrived - sent[key][0]) * 1000
                        delivery["activity" if paths[index] == ACTIVITY else "session"].append(ms)
                        if at_ms:
                            delivery["created_to_receipt"].append(arrived * 1000 - at_ms)
                done += 1
                progress.update(done, f"{name}: {result.per_second:,.0f} req/s")
        progress.done(done)
    finally:
        if consumer is not None and consumer.poll() is None:
            consumer.send_signal(signal.SIGTERM)
            try:
                consumer.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(consumer.pid, signal.SIGKILL)
                consumer.wait(5)
        procs.stop(sse)

    out["variants"] = {}
    for name in variants:
        out["variants"][name] = {
            **slices_summary(slices[name], latencies[name], errors[name]),
            "sse_cpu_pct_of_a_core": round(100 * sse_cpu[name][0] / max(1e-6, sse_cpu[name][1]), 2),
            "consumer_cpu_pct_of_a_core": round(100 * consumer_cpu[name][0] / max(1e-6, consumer_cpu[name][1]), 2),
            "gunicorn_cpu_ms_per_request": round(1000 * app_cpu[name][0] / max(1, app_cpu[name][1]), 3),
            # Everything else on this shared machine (other people's tests, browsers, builds):
            # what makes slices of the same variant differ.
            "other_processes_cores": round(others_cpu[name][0] / max(1e-6, others_cpu[name][1]), 2),
            "append_latency_ms": summarize(append_ms[name]),
            "append_failed": append_failed[name],
        }
    out["variants"]["with"]["client_process_cpu_pct_of_a_core"] = round(100 * holder_cpu[0] / max(1e-6, holder_cpu[1]), 2)
    out["streams_still_open_before_without_slices"] = streams_left
    w, wo = out["variants"]["with"], out["variants"]["without"]
    # Also per round (the two slices of a round are seconds apart): steadier when the box's other
    # load drifts between rounds.
    paired = sorted(a / b for a, b in zip(slices["with"], slices["without"]) if b)
    out["ratios"] = {
        "req_per_s": ratio(w["req_per_s_median"], wo["req_per_s_median"]),
        "req_per_s_paired_median": round(paired[len(paired) // 2], 3) if paired else None,
        "req_per_s_paired": [round(x, 3) for x in paired],
        "p50": ratio(w["latency_ms"].get("p50"), wo["latency_ms"].get("p50")),
        "p95": ratio(w["latency_ms"].get("p95"), wo["latency_ms"].get("p95")),
    }
    out["delivery"] = {
        "appends": appended_with, "deliveries_expected": expected, "deliveries_received": received,
        "duplicates": duplicates,
        "append_to_receipt_ms_session_streams": summarize(delivery["session"]),
        "append_to_receipt_ms_activity_streams": summarize(delivery["activity"]),
        "turn_created_to_receipt_ms": summarize(delivery["created_to_receipt"]),
    }
    out["rows"] = rows(out)
    return out


def _verdict(value: float | None, *, higher_is_better: bool) -> str:
    if value is None:
        return "–"
    ok = value >= 1 - TARGET if higher_is_better else value <= 1 + TARGET
    return "met" if ok else "MISSED"


def rows(out: dict) -> list[list[str]]:
    w, wo, r, d, idle = out["variants"]["with"], out["variants"]["without"], out["ratios"], out["delivery"], out["idle"]
    n = out["streams"]
    wl, wol = w["latency_ms"], wo["latency_ms"]
    p = lambda s, k: f"{s[k]:.2f}" if s.get(k) is not None else "–"  # noqa: E731
    ev, act, created = (d["append_to_receipt_ms_session_streams"], d["append_to_receipt_ms_activity_streams"],
                        d["turn_created_to_receipt_ms"])
    return [
        ["8 sse", f"context req/s with {n} streams / without", f"{w['req_per_s_median']:,.0f} / {wo['req_per_s_median']:,.0f}",
         f"ratio {r['req_per_s']} (≥ 0.90; per round: median {r['req_per_s_paired_median']}, range "
         f"{min(r['req_per_s_paired'], default=0):.2f}–{max(r['req_per_s_paired'], default=0):.2f}); {out['clients']} clients, "
         f"median of {out['rounds']} × {out['slice_seconds']:g} s slices each; gunicorn CPU {w['gunicorn_cpu_ms_per_request']:.2f} / "
         f"{wo['gunicorn_cpu_ms_per_request']:.2f} ms/req; processes outside the bench used {w['other_processes_cores']:.2f} / "
         f"{wo['other_processes_cores']:.2f} cores; errors {w['errors']} / {wo['errors']}", _verdict(r["req_per_s"], higher_is_better=True)],
        ["8 sse", f"context p50 / p95 with {n} streams vs without",
         f"{p(wl, 'p50')} / {p(wl, 'p95')} vs {p(wol, 'p50')} / {p(wol, 'p95')} ms",
         f"ratios {r['p50']} / {r['p95']} (≤ 1.10)",
         "met" if _verdict(r["p50"], higher_is_better=False) == _verdict(r["p95"], higher_is_better=False) == "met"
         else ("–" if None in (r["p50"], r["p95"]) else "MISSED")],
        ["8 sse", "turn append → `turn` event received (session streams)", lat(ev),
         f"p50/p95/p99 from just before the POST, {ev.get('n', 0):,} receipts of {d['appends']} appends "
         f"({out['append_rate_per_s']:g}/s, consumer + SSE server); activity streams {lat(act)}; "
         f"turn created_at → receipt p50 {p(created, 'p50')} ms; received {d['deliveries_received']:,} of "
         f"{d['deliveries_expected']:,} expected", ""],
        ["8 sse", f"SSE process, {n} idle streams",
         f"RSS {idle['rss_mib_idle']:.1f} MiB, CPU {idle['cpu_pct_of_a_core']:.2f} %",
         f"{idle['rss_mib_before_streams']:.1f} MiB before the streams (+{idle['rss_kib_per_stream']:.0f} KiB per stream); "
         f"CPU over {idle['seconds']:g} s idle, % of a core; all open in {idle['connect_all_s']} s; "
         f"CPU during the load {w['sse_cpu_pct_of_a_core']:.1f} % with streams / {wo['sse_cpu_pct_of_a_core']:.1f} % without", ""],
    ]
