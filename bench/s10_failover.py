"""Scenario 10: the DAX leader killed under a load of reads and writes.

A 3-node local DAX cluster of its own (devtools.dax.start_dax_cluster) in front of the bench's
DynamoDB Local; in this process the app's own read and write paths run against it (the routed
connection with its breaker and fallback, ``DAX_ENDPOINTS`` = every node): reader threads load
contexts (the Redis entry deleted first, so each load reads the store), writer threads append
turns, each writer to its own sessions. After a warm-up the leader's process is SIGKILLed. The
scenario measures what the app's callers saw and when the cluster recovered:

* client-visible errors: exceptions that reached a caller of ``context_load`` / ``turn_append``
  (goal 0: the client's retries, the app's breaker and fallback absorb the rest);
* time to a new leader: kill → a surviving node's stats say it holds the leader lease;
* time until writes go through DAX again: kill → the first append whose write took the DAX route
  after a stretch on the fallback (or at once, if no write ever fell back);
* reads served during the failover, and from where (DAX or the DynamoDB fallback);
* acknowledged appends lost: every turn an append returned is read back with ConsistentRead
  (goal 0), and no client message id is stored twice.
"""

from __future__ import annotations

import random
import threading
import time
import uuid

from .stats import fmt, say

TABLE = "bench-failover"
SESSIONS_PER_WRITER = 5


def run(stack, ctx, *, readers: int, writers: int, warm_seconds: float, max_seconds: float,
        settle_seconds: float) -> dict:
    from devtools.dax import start_dax_cluster

    from . import data

    data.use_table(TABLE)
    run_id = uuid.uuid4().hex[:6]
    ids = [f"benchfo{run_id}{i:04d}" for i in range(writers * SESSIONS_PER_WRITER)]
    data.load(f"failover-{run_id}", (data.SessionSpec_for(sid, i, 5) for i, sid in enumerate(ids)),
              total_sessions=len(ids), total_turns=5 * len(ids))
    cluster = start_dax_cluster(0, size=3, dynamodb_endpoint=stack.ddb_endpoint, stats_port=0,
                                log=stack.work / "dax-cluster.log", extra_args=["--log-level", "WARNING"])
    try:
        out = drive(cluster, ids, readers=readers, writers=writers, warm_seconds=warm_seconds,
                    max_seconds=max_seconds, settle_seconds=settle_seconds)
    finally:
        cluster.stop()
    out["rows"] = rows(out)
    return out


def drive(cluster, ids: list[str], *, readers: int, writers: int, warm_seconds: float, max_seconds: float,
          settle_seconds: float) -> dict:
    """Run the load against ``cluster`` (the app pointed at every node), kill its leader after
    ``warm_seconds``, stop once a new leader holds the lease and appends have gone through DAX
    again for ``settle_seconds`` (or after ``max_seconds``), wait for the old leader to rejoin,
    and check every acknowledged append. Writers take ``len(ids) // writers`` sessions each.
    Also the body of tests/test_dax_failover.py, so the test and the figures are one procedure."""
    from django.conf import settings

    from sessions_app import dynamo
    from sessions_app.realtime import redis_connection
    from sessions_app.realtime.keys import context_key
    from sessions_app.selectors import context_load
    from sessions_app.services.turns import turn_append

    per_writer = max(1, len(ids) // writers)
    run_id = uuid.uuid4().hex[:6]
    saved = settings.DAX_ENDPOINTS
    settings.DAX_ENDPOINTS = list(cluster.endpoints)
    dynamo.reset_connections()
    redis = redis_connection()
    stop = threading.Event()
    lock = threading.Lock()
    events: list[tuple[float, str, str, str]] = []  # (time, kind, outcome, route or error)
    acknowledged: dict[str, dict[int, str]] = {sid: {} for sid in ids}

    def note(kind: str, outcome: str, detail: str) -> None:
        with lock:
            events.append((time.monotonic(), kind, outcome, detail))

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            sid = rng.choice(ids)
            redis.delete(context_key(session_id=sid))
            try:
                loaded = context_load(session_id=sid)
            except Exception as exc:  # what a caller of the app would have seen
                note("read", "error", f"{type(exc).__name__}: {exc}")
            else:
                note("read", "ok", loaded.source)

    def writer(index: int) -> None:
        mine = ids[index * per_writer:(index + 1) * per_writer]
        n = 0
        while not stop.is_set():
            sid = mine[n % len(mine)]
            n += 1
            msg = f"fo-{run_id}-{index}-{n}"
            try:
                with dynamo.routes_recorded() as routes:
                    result = turn_append(session_id=sid, role="user", text=f"failover probe {n}", client_msg_id=msg)
            except Exception as exc:
                note("write", "error", f"{type(exc).__name__}: {exc}")
                continue
            with lock:
                acknowledged[sid][int(result.turn.seq)] = msg
            # The append's reads are strongly consistent (never DAX); its write is the one call
            # that can take the DAX route or fall back.
            write_route = next((r for r in routes.routes if r in (dynamo.ROUTE_DAX, dynamo.ROUTE_FALLBACK)), "none")
            note("write", "ok", write_route)

    threads = [threading.Thread(target=reader, args=(i,), daemon=True) for i in range(readers)]
    threads += [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(writers)]
    new_leader = new_leader_at = None
    try:
        leader = cluster.wait_for_leader(timeout=30)
        say(f"failover: cluster {', '.join(cluster.endpoints)}; leader {leader.name}; "
            f"{readers} readers, {writers} writers")
        for t in threads:
            t.start()
        time.sleep(warm_seconds)
        killed_at = time.monotonic()
        cluster.kill(leader)
        say(f"failover: killed the leader {leader.name}")
        deadline = killed_at + max_seconds
        while time.monotonic() < deadline:
            if new_leader is None:
                found = cluster.leader(exclude=leader)
                if found is not None:
                    new_leader, new_leader_at = found, time.monotonic()
            back = _writes_back_on_dax(events, lock, killed_at)
            if new_leader is not None and back is not None and time.monotonic() - back >= settle_seconds:
                break
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        rejoined = cluster.wait_for_rejoin(leader, timeout=30)
    finally:
        stop.set()
        settings.DAX_ENDPOINTS = saved
        dynamo.reset_connections()

    writes_back_at = _writes_back_on_dax(events, lock, killed_at)
    lost, duplicated = _verify(acknowledged)
    out = _summary(events, killed_at, new_leader_at, writes_back_at, lost, duplicated, rejoined)
    out.update({"readers": readers, "writers": writers, "sessions": len(ids),
                "old_leader": leader.name, "new_leader": new_leader.name if new_leader else None})
    return out


def _writes_back_on_dax(events, lock, killed_at: float) -> float | None:
    """When appends went through DAX again after the kill: the first DAX-routed write that
    follows the last fallen-back one (None while writes still fall back, or none came yet)."""
    with lock:
        after = [(t, detail) for t, kind, outcome, detail in events if kind == "write" and outcome == "ok" and t >= killed_at]
    last_fallback = max((t for t, d in after if d == "fallback"), default=None)
    for t, detail in after:
        if detail == "dax" and (last_fallback is None or t > last_fallback):
            return t
    return None


def _verify(acknowledged: dict[str, dict[int, str]]) -> tuple[int, int]:
    """Acknowledged turns missing from DynamoDB (ConsistentRead), and client ids stored twice."""
    from sessions_app import keys
    from sessions_app.models import Turn

    lost = duplicated = 0
    for sid, acked in acknowledged.items():
        stored = {int(t.seq): t.client_msg_id for t in Turn.query(keys.session_pk(sid), Turn.sk.startswith("TURN#"),
                                                                  consistent_read=True)}
        lost += sum(1 for seq, msg in acked.items() if stored.get(seq) != msg)
        seen: dict[str, int] = {}
        for msg in stored.values():
            seen[msg] = seen.get(msg, 0) + 1
        duplicated += sum(n - 1 for n in seen.values() if n > 1)
    return lost, duplicated


def _summary(events, killed_at, new_leader_at, writes_back_at, lost, duplicated, rejoined) -> dict:
    def since(t):
        return round(t - killed_at, 2) if t is not None else None

    end_of_failover = writes_back_at or (events[-1][0] if events else killed_at)
    during = [e for e in events if killed_at <= e[0] <= end_of_failover]
    errors = [e for e in events if e[2] == "error"]
    gaps = _longest_gaps(events, killed_at)
    return {
        "client_visible_errors": len(errors),
        "error_examples": sorted({e[3] for e in errors})[:5],
        "seconds_to_new_leader": since(new_leader_at),
        "seconds_until_writes_via_dax": since(writes_back_at),
        "old_leader_rejoined_as_replica": rejoined,
        "reads_total": sum(1 for e in events if e[1] == "read" and e[2] == "ok"),
        "writes_total": sum(1 for e in events if e[1] == "write" and e[2] == "ok"),
        "during_failover": {
            kind: {route: sum(1 for e in during if e[1] == kind and e[2] == "ok" and e[3] == route)
                   for route in sorted({e[3] for e in during if e[1] == kind and e[2] == "ok"})}
            for kind in ("read", "write")
        },
        "longest_gap_ms": gaps,
        "acknowledged_lost": lost,
        "client_msg_ids_stored_twice": duplicated,
    }


def _longest_gaps(events, killed_at: float) -> dict:
    """Per kind, the longest stretch after the kill with no successful call (ms): how long a
    caller could have waited on one call."""
    out = {}
    for kind in ("read", "write"):
        times = sorted(t for t, k, outcome, _ in events if k == kind and outcome == "ok" and t >= killed_at)
        times = [killed_at] + times
        out[kind] = round(max((b - a for a, b in zip(times, times[1:])), default=0.0) * 1000, 1)
    return out


def rows(out: dict) -> list[list[str]]:
    during = out["during_failover"]
    reads = ", ".join(f"{n:,} {route}" for route, n in during["read"].items()) or "–"
    writes = ", ".join(f"{n:,} {route}" for route, n in during["write"].items()) or "–"
    return [
        ["10 failover", "client-visible errors (reads + appends)", fmt(out["client_visible_errors"]),
         f"{out['reads_total']:,} reads, {out['writes_total']:,} appends in all", "met" if out["client_visible_errors"] == 0 else "MISSED"],
        ["10 failover", "kill → new leader", fmt(out["seconds_to_new_leader"], " s"), "lease election", ""],
        ["10 failover", "kill → appends through DAX again", fmt(out["seconds_until_writes_via_dax"], " s"),
         "client endpoint refresh + the app's breaker", ""],
        ["10 failover", "served during the failover", f"reads: {reads}", f"appends: {writes}", ""],
        ["10 failover", "longest wait for a successful call", f"read {out['longest_gap_ms']['read']} ms",
         f"append {out['longest_gap_ms']['write']} ms", ""],
        ["10 failover", "acknowledged appends lost / stored twice",
         f"{out['acknowledged_lost']} / {out['client_msg_ids_stored_twice']}", "ConsistentRead check",
         "met" if out["acknowledged_lost"] == 0 and out["client_msg_ids_stored_twice"] == 0 else "MISSED"],
        ["10 failover", "old leader restarted", "rejoined as replica" if out["old_leader_rejoined_as_replica"] else "did not rejoin",
         "", "met" if out["old_leader_rejoined_as_replica"] else "MISSED"],
    ]

