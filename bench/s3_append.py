"""Scenario 3: append a turn over HTTP with 1, 8 and 32 concurrent clients, spread over many
sessions and all on one session.

The append server is a gunicorn like the others (DAX on, production worker settings) whose
workers carry the bench's counters (bench/instrument.py): Django request time, redis-py round
trips (socket sends), and the time of every DynamoDB/DAX call — so "the app's overhead over the
DynamoDB transaction" is server request time minus the TransactWriteItems time, per append, from
the same requests. Slices of the six (clients × spread) cases alternate in random order.
Redis-side commands come from ``INFO stats`` deltas (they include commands run inside scripts).

Last, the hardening check: ``DENSE_APPENDS`` appends from ``DENSE_CLIENTS`` clients to one fresh
session, each client retrying its own message until it is stored (409 busy, 429 and 503 are
retried with the same client message id), then every turn read back strongly consistent: the
sequence must be exactly 1..N, each message stored once.
"""

from __future__ import annotations

import json
import random
import uuid

from . import instrument, loadgen
from .stats import Progress, lat, summarize

TABLE = "bench-append"
CASES = [(c, spread) for c in (1, 8, 32) for spread in ("many", "one")]
DENSE_CLIENTS = 50
DENSE_APPENDS = 1000
RETRIED = {0, 409, 429, 503}  # 0: the connection failed (the harness retries it like the bot would)


def run(stack, ctx, *, sessions: int, rounds: int, seconds: float, tx_samples: int = 0) -> dict:
    from sessions_app.realtime import redis_connection

    from . import data
    from .data import SessionSpec_for

    server = ctx.server("append")
    token = ctx.write_token
    data.use_table(TABLE)
    run_id = uuid.uuid4().hex[:8]
    ids = [f"benchap{run_id}{i:05d}" for i in range(sessions)]
    hot = f"benchaphot{run_id}"
    data.load(f"append-{run_id}", (SessionSpec_for(sid, i, 5) for i, sid in enumerate(ids + [hot])),
              total_sessions=len(ids) + 1, total_turns=5 * (len(ids) + 1))
    text = "Is volume 4 of Frieren in stock? I would like the special edition if there is one."

    def maker(spread: str):
        def make(i: int) -> bytes:
            sid = hot if spread == "one" else ids[i % len(ids)]
            body = json.dumps({"role": "user", "text": text, "client_msg_id": uuid.uuid4().hex}).encode()
            return loadgen.build("POST", f"/api/v1/sessions/{sid}/turns", token=token, body=body)
        return make

    redis = redis_connection()
    for spread in ("many", "one"):  # warm-up: worker connections, DAX client, script cache
        loadgen.closed_loop(server.port, maker(spread), concurrency=4, seconds=0.5, ok=lambda s: s == 201)

    acc = {case: {"rates": [], "lat": [], "statuses": {}, "server": None, "redis_cmds": 0, "cpu": 0.0} for case in CASES}
    rng = random.Random(3)
    progress = Progress("scenario 3", rounds * len(CASES), "slices")
    done = 0
    for _ in range(rounds):
        order = list(CASES)
        rng.shuffle(order)
        for case in order:
            c, spread = case
            before = instrument.read_totals(server.counters_dir)
            cmds0 = redis.info("stats")["total_commands_processed"]
            cpu0 = server.cpu_seconds()
            result = loadgen.closed_loop(server.port, maker(spread), concurrency=c, seconds=seconds, ok=lambda s: s == 201)
            cpu = server.cpu_seconds() - cpu0
            cmds = redis.info("stats")["total_commands_processed"] - cmds0 - 1
            after = instrument.read_totals(server.counters_dir)
            d = instrument.delta(after, before)
            a = acc[case]
            a["rates"].append(result.per_second)
            a["lat"].extend(result.latencies_ms)
            for status, n in result.statuses.items():
                a["statuses"][str(status)] = a["statuses"].get(str(status), 0) + n
            a["redis_cmds"] += cmds
            a["cpu"] += cpu
            if a["server"] is None:
                a["server"] = d
            else:
                for key in ("requests", "request_ms", "redis_round_trips"):
                    a["server"][key] += d[key]
                for op, (calls, ms) in d["ddb"].items():
                    entry = a["server"]["ddb"].setdefault(op, [0, 0.0])
                    entry[0] += calls
                    entry[1] += ms
            done += 1
            progress.update(done, f"{c} clients/{spread}: {result.per_second:,.0f} appends/s")
    progress.done(done)

    out = {"sessions": sessions, "rounds": rounds, "slice_seconds": seconds, "cases": {}}
    rows = []
    for case in CASES:
        c, spread = case
        a = acc[case]
        s = a["server"] or {"requests": 0, "request_ms": 0.0, "redis_round_trips": 0, "ddb": {}}
        reqs = max(1, s["requests"])
        tx_calls, tx_ms = s["ddb"].get("TransactWriteItems", [0, 0.0])
        ddb_ms = sum(ms for _, ms in s["ddb"].values())
        created = a["statuses"].get("201", 0)
        rates = sorted(a["rates"])
        server_ms = s["request_ms"] / reqs
        tx_per_append = tx_ms / max(1, tx_calls)
        case_out = {
            "appends_per_s_median": round(rates[len(rates) // 2], 1),
            "latency_ms": summarize(a["lat"]),
            "statuses": a["statuses"],
            "server_requests": s["requests"],
            "server_ms_per_request": round(server_ms, 3),
            "redis_round_trips_per_request": round(s["redis_round_trips"] / reqs, 2),
            "redis_commands_per_request": round(a["redis_cmds"] / reqs, 2),
            "ddb_calls_per_request": {op: round(calls / reqs, 2) for op, (calls, _) in s["ddb"].items()},
            "ddb_ms_per_request": round(ddb_ms / reqs, 3),
            "transact_ms_per_call": round(tx_per_append, 3),
            "transact_calls_per_created": round(tx_calls / max(1, created), 3),
            "app_overhead_ms_per_request": round(server_ms - tx_ms / reqs, 3),
            "cpu_ms_per_request": round(a["cpu"] / reqs * 1000, 3),
        }
        out["cases"][f"{c}x{spread}"] = case_out
        refused = sum(n for st, n in a["statuses"].items() if st != "201")
        rows.append([
            "3 append HTTP", f"{c} client{'s' if c > 1 else ''}, {'many sessions' if spread == 'many' else 'one session'}",
            f"{case_out['appends_per_s_median']:,.0f} appends/s",
            f"p50/p95/p99 {lat(case_out['latency_ms'])}; non-201 {refused}; Redis {case_out['redis_round_trips_per_request']:g} "
            f"round trips ({case_out['redis_commands_per_request']:g} cmds)/req; server {server_ms:.1f} ms/req of which "
            f"TransactWriteItems {tx_ms / reqs:.1f} ms (all DynamoDB/DAX {ddb_ms / reqs:.1f} ms) → app overhead "
            f"{case_out['app_overhead_ms_per_request']:.1f} ms; CPU {case_out['cpu_ms_per_request']:.1f} ms/req", ""])
    dense = dense_check(server.port, token, session_id=f"benchapdense{run_id}", clients=DENSE_CLIENTS,
                        appends=DENSE_APPENDS)
    out["dense"] = dense
    rows.append(["3 append HTTP", f"{DENSE_CLIENTS} clients, one session, {DENSE_APPENDS:,} appends",
                 "dense" if dense["dense"] else "**NOT dense**",
                 f"stored {dense['stored']:,} turns, seq 1..{dense['max_seq']:,}, {dense['duplicates']} duplicate and "
                 f"{dense['missing']} missing messages; {dense['retries']:,} retried answers ({dense['retried_statuses']}); "
                 f"{dense['seconds']:.1f} s", ""])
    out["rows"] = rows
    return out


def dense_check(port: int, token: str, *, session_id: str, clients: int, appends: int) -> dict:
    """``appends`` messages from ``clients`` threads to one new session, then a consistent read."""
    import threading
    import time
    from collections import Counter

    from sessions_app import keys
    from sessions_app.models import Turn
    from sessions_app.services import session_start

    session_start(customer_id="bench-dense", channel="web", session_id=session_id)
    path = f"/api/v1/sessions/{session_id}/turns"
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    per_client = appends // clients
    start = threading.Barrier(clients)

    def client(n: int) -> None:
        start.wait()
        for m in range(per_client):
            body = json.dumps({"role": "user", "text": f"client {n} message {m}", "client_msg_id": f"d{n}-{m}"}).encode()
            while True:
                status, _, _ = loadgen.timed(port, loadgen.build("POST", path, token=token, body=body))
                with lock:
                    statuses[status] += 1
                if status not in RETRIED:
                    break
                time.sleep(0.01)

    began = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    turns = list(Turn.query(keys.session_pk(session_id), Turn.sk.startswith(keys.TURN_PREFIX), consistent_read=True))
    seqs = [int(t.seq) for t in turns]
    ids = Counter(t.client_msg_id for t in turns)
    wanted = {f"d{n}-{m}" for n in range(clients) for m in range(per_client)}
    return {
        "stored": len(turns), "max_seq": max(seqs, default=0), "seconds": round(seconds, 2),
        "dense": seqs == list(range(1, len(turns) + 1)) and set(ids) == wanted and all(c == 1 for c in ids.values()),
        "duplicates": sum(c - 1 for c in ids.values()), "missing": len(wanted - set(ids)),
        "retries": sum(n for st, n in statuses.items() if st in RETRIED),
        "retried_statuses": ", ".join(f"{st}: {n}" for st, n in sorted(statuses.items()) if st in RETRIED) or "none",
        "statuses": {str(k): v for k, v in statuses.items()},
    }
