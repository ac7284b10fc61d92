"""Scenario 7: the change feed under the append scenario's heaviest load.

The load is scenario 3's highest-rate case: ``CLIENTS`` closed-loop clients appending over HTTP
(the production gunicorn, DAX on) spread over many sessions, here on a table of its own
(``bench-stream``, stream enabled by ``table_ensure`` like ``dynamodb_init`` does). The consumer
is the real thing: ``manage.py stream_consume`` in a subprocess with the settings' handlers, so
its CPU is its own process's (utime + stime from /proc, every thread).

1. *without consumer*: the load runs for ``seconds`` with no consumer — the appends/s baseline,
   and a backlog in the stream;
2. *catch-up*: the consumer starts and drains the backlog (the loaded sessions and phase 1's
   appends) — its records/s when nothing but its own speed limits it, CPU per record;
3. *with consumer*: the same load for ``seconds`` while the consumer follows. It starts on a
   ten-second boundary, so the progress buckets the consumers report into
   (``realtime.stream_progress``) hold this phase's records only: lag p50/p95/max, records/s, CPU
   per record, records per append, appends/s against the baseline, and how long after the load
   stopped the consumer was caught up. Independently of the consumer's own lag figures, the
   bench subscribes to the live-event channel and times each turn event from the turn's
   ``created_at`` to its arrival (write → event seen by a subscriber), and a probe appends a
   turn with a word of its own every 0.25 s and times it until search finds it (append →
   searchable: the consumer's ``search_index`` handler, in the index the settings name);
4. SIGTERM: the consumer must finish, say what it did and leave no lease held;
5. the load once more without a consumer, so the with-consumer phase sits between two baselines.

Known skew in the consumer's lag figures on DynamoDB Local: it rounds a record's
ApproximateCreationDateTime down to the minute, and ``streams.records`` corrects that from the
item's own time attributes — which the client-message-id markers (a third of an append's
records) do not have. Their lag reads as "seconds since the minute began", so the p95/max show up
to 60 s where the turn events arrive in well under a second; the live-event figure is the check.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

from . import loadgen
from .consumer import BUCKET, ConsumerProgress, consumer_start, consumer_wait_reading
from .stats import lat, say, summarize

TABLE = "bench-stream"
CLIENTS = 32  # scenario 3's highest-rate case: 32 clients, many sessions


class _Events:
    """Subscribes to the activity channel; keeps (arrival, lag ms) of each turn event of ours."""

    def __init__(self, redis_url: str, prefix: str):
        import redis

        self.prefix = prefix
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._client = redis.Redis.from_url(redis_url)
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        from sessions_app.realtime import keys

        self._pubsub.subscribe(keys.events_activity_channel())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            message = self._pubsub.get_message(timeout=0.2)
            if not message or message.get("type") != "message":
                continue
            arrived = time.time()
            try:
                event = json.loads(message["data"])
            except ValueError:
                continue
            if event.get("kind") == "turn" and str(event.get("session_id", "")).startswith(self.prefix):
                self.samples.append((arrived, arrived * 1000 - event["at_ms"]))

    def between(self, start: float, end: float) -> list[float]:
        return [ms for at, ms in self.samples if start <= at <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._pubsub.close()
        self._client.close()


class _SearchProbe:
    """Appends a turn carrying a word of its own every ``interval`` seconds (over HTTP, as the
    load does) and times how long until the search index answers it: append → searchable,
    through the consumer's ``search_index`` handler and the engine the settings name."""

    def __init__(self, port: int, token: str, session_id: str, *, interval: float = 0.25):
        self.port, self.token, self.session_id, self.interval = port, token, session_id, interval
        self.samples: list[float] = []
        self.missed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _word(n: int) -> str:
        letters = "".join("bcdfghjklmnpqrstvwxz"[int(d)] for d in f"{n:06d}")
        return f"zq{letters}"  # letters only: the analysis keeps it one word

    def _run(self) -> None:
        import http.client

        from sessions_app.search import search_engine

        n = 0
        while not self._stop.is_set():
            n += 1
            word = self._word(n)
            body = json.dumps({"role": "user", "text": f"probe {word}", "client_msg_id": uuid.uuid4().hex})
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            conn.request("POST", f"/api/v1/sessions/{self.session_id}/turns", body=body,
                         headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
            ok = conn.getresponse().status == 201
            conn.close()
            written = time.monotonic()
            deadline = written + 30
            while ok and time.monotonic() < deadline and not search_engine().search(word, limit=1).hits:
                time.sleep(0.01)
            if ok and time.monotonic() < deadline:
                self.samples.append((time.monotonic() - written) * 1000)
            else:
                self.missed += 1
            self._stop.wait(self.interval)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(40)


def run(stack, ctx, *, sessions: int, seconds: float) -> dict:
    from django.conf import settings

    from sessions_app.realtime import stream_progress
    from sessions_app.streams.consumer import stream_arn_of
    from sessions_app.streams.leases import LeaseTable, lease_table_name

    from . import data
    from .data import SessionSpec_for

    server = ctx.server("stream")
    token = ctx.write_token
    data.use_table(TABLE)
    arn = stream_arn_of(table_name=TABLE)
    if arn is None:
        raise RuntimeError(f"table {TABLE} has no stream (DYNAMODB_STREAM is off?)")
    run_id = uuid.uuid4().hex[:8]
    prefix = f"benchst{run_id}"
    ids = [f"{prefix}{i:05d}" for i in range(sessions)]
    data.load(f"stream-{run_id}", (SessionSpec_for(sid, i, 5) for i, sid in enumerate(ids)),
              total_sessions=len(ids), total_turns=5 * len(ids))
    text = "Is volume 4 of Frieren in stock? I would like the special edition if there is one."

    def make(i: int) -> bytes:
        body = json.dumps({"role": "user", "text": text, "client_msg_id": uuid.uuid4().hex}).encode()
        return loadgen.build("POST", f"/api/v1/sessions/{ids[i % len(ids)]}/turns", token=token, body=body)

    ok = lambda status: status == 201  # noqa: E731
    loadgen.closed_loop(server.port, make, concurrency=CLIENTS, seconds=1.0, ok=ok)  # warm-up

    # 1. the load without a consumer: the baseline, and a backlog
    say(f"scenario 7: {CLIENTS} clients appending for {seconds:g}s, no consumer")
    baseline = loadgen.closed_loop(server.port, make, concurrency=CLIENTS, seconds=seconds, ok=ok)

    # 2. the consumer starts and catches up
    log_path = stack.work / "stream-consume.log"
    events = _Events(stack.redis_url, prefix)
    t_spawn = time.time()
    proc = consumer_start(stack, log_path, table=TABLE)
    out: dict = {"sessions": sessions, "clients": CLIENTS, "load_seconds": seconds}
    try:
        consumer_wait_reading(proc, log_path)
        poll = ConsumerProgress(proc.pid, since=t_spawn)
        t0, r0, c0 = poll.sample()
        say("scenario 7: consumer started, draining the backlog")
        t1, r1, c1 = poll.until_quiet(timeout=300, proc=proc)
        catch_up = {"records": r1 - r0, "seconds": round(t1 - t0, 2), "cpu_seconds": round(c1 - c0, 3),
                    "startup_cpu_seconds": round(c0, 3)}
        catch_up["records_per_s"] = round(catch_up["records"] / max(1e-6, t1 - t0), 1)
        catch_up["cpu_ms_per_record"] = round((c1 - c0) * 1000 / max(1, r1 - r0), 3)

        # 3. the load while the consumer follows, starting on a progress-bucket boundary
        time.sleep(BUCKET - time.time() % BUCKET + 0.05)
        say(f"scenario 7: {CLIENTS} clients appending for {seconds:g}s, consumer following")
        t2, r2, c2 = poll.sample()
        probe = _SearchProbe(server.port, token, ids[0])
        try:
            followed = loadgen.closed_loop(server.port, make, concurrency=CLIENTS, seconds=seconds, ok=ok)
        finally:
            probe.close()
        t3 = time.time()
        t4, r4, c4 = poll.until_quiet(timeout=300, proc=proc)
        buckets = (int(t4) // BUCKET - int(t2) // BUCKET) + 1
        progress = stream_progress(seconds=BUCKET * buckets, now=t4)
        window_s = t4 - t2
        follow = {
            "records": r4 - r2, "seconds": round(window_s, 2), "cpu_seconds": round(c4 - c2, 3),
            "records_per_s": round((r4 - r2) / max(1e-6, window_s), 1),
            "cpu_ms_per_record": round((c4 - c2) * 1000 / max(1, r4 - r2), 3),
            "consumer_cpu_share": round((c4 - c2) / max(1e-6, window_s), 3),
            "caught_up_after_load_s": round(max(0.0, t4 - t3), 2),
            "progress_window_records": progress.records if progress else None,
            "progress_batches": progress.batches if progress else None,
            "lag_p50_ms": progress.lag_p50_ms if progress else None,
            "lag_p95_ms": progress.lag_p95_ms if progress else None,
            "lag_max_ms": progress.lag_max_ms if progress else None,
            "origins": progress.origins if progress else None,
            "turn_event_lag_ms": summarize(events.between(t2, t4)),
            "records_per_append": round((r4 - r2) / max(1, followed.statuses.get(201, 0)), 2),
            "append_to_searchable_ms": summarize(probe.samples), "search_probe_missed": probe.missed,
        }
    finally:
        events.close()
        # 4. SIGTERM: finish the batch, checkpoint, release the leases
        t_stop = time.monotonic()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait(5)
        stop_s = time.monotonic() - t_stop
    # 5. the load without a consumer again: phase 3 is bracketed by two baselines (not interleaved)
    say(f"scenario 7: {CLIENTS} clients appending for {seconds:g}s, consumer stopped")
    after = loadgen.closed_loop(server.port, make, concurrency=CLIENTS, seconds=seconds, ok=ok)
    log_text = log_path.read_text(errors="replace")
    stopped = re.search(r"stopped: (\d+) records in (\d+) batches, (\d+) skipped", log_text)
    held = [lease.shard_id for lease in LeaseTable(stream_arn=arn, table_name=lease_table_name(TABLE)).list()
            if lease.held() and not lease.finished]
    out["shutdown"] = {"exit_code": code, "seconds": round(stop_s, 2), "leases_still_held": held,
                       "consumer_records": int(stopped[1]) if stopped else None,
                       "consumer_batches": int(stopped[2]) if stopped else None,
                       "consumer_skipped": int(stopped[3]) if stopped else None,
                       "errors_logged": len(re.findall(r" (ERROR|WARNING) ", log_text))}
    out["without_consumer"] = {"appends_per_s": round(baseline.per_second, 1), "latency_ms": summarize(baseline.latencies_ms),
                               "statuses": {str(k): v for k, v in baseline.statuses.items()}}
    out["without_consumer_after"] = {"appends_per_s": round(after.per_second, 1), "latency_ms": summarize(after.latencies_ms),
                                     "statuses": {str(k): v for k, v in after.statuses.items()}}
    out["with_consumer"] = {"appends_per_s": round(followed.per_second, 1), "latency_ms": summarize(followed.latencies_ms),
                            "statuses": {str(k): v for k, v in followed.statuses.items()}}
    out["catch_up"], out["follow"] = catch_up, follow
    out["consumer_settings"] = {"batch_size": settings.STREAM_BATCH_SIZE, "poll_seconds": settings.STREAM_POLL_SECONDS,
                                "handlers": list(settings.STREAM_HANDLERS)}

    without = (baseline.per_second + after.per_second) / 2
    ratio = followed.per_second / without if without else None
    followed_p50, baseline_p50, after_p50 = (summarize(r.latencies_ms).get("p50") or 0.0
                                             for r in (followed, baseline, after))
    ms = lambda v: "–" if v is None else f"{v:,.0f} ms"  # noqa: E731
    ev = follow["turn_event_lag_ms"]
    sd = out["shutdown"]
    out["rows"] = [
        ["7 stream", f"lag p50 / p95 / max ({CLIENTS} clients appending)",
         f"{ms(follow['lag_p50_ms'])} / {ms(follow['lag_p95_ms'])} / {ms(follow['lag_max_ms'])}",
         f"consumer's own reports (stream_progress, {follow['progress_window_records']:,} records in "
         f"{follow['progress_batches']} batches); caught up {follow['caught_up_after_load_s']:.1f} s after the load stopped", ""],
        ["7 stream", "turn written → live event seen", lat(ev) if ev.get("n") else "–",
         f"p50/p95/p99 over {ev.get('n', 0):,} turn events (pub/sub subscriber in the bench)", ""],
        ["7 stream", "turn appended → found by search", lat(follow["append_to_searchable_ms"])
         if follow["append_to_searchable_ms"].get("n") else "–",
         f"p50/p95/p99 over {follow['append_to_searchable_ms'].get('n', 0)} probe turns during the load "
         f"({follow['search_probe_missed']} not found in 30 s); engine {settings.SEARCH_ENGINE}", ""],
        ["7 stream", "consumer following the load", f"{follow['records_per_s']:,.0f} records/s",
         f"CPU {follow['cpu_ms_per_record']:.3f} ms/record ({follow['consumer_cpu_share'] * 100:.0f} % of a core); "
         f"{follow['records_per_append']:g} records per append", ""],
        ["7 stream", "consumer draining a backlog", f"{catch_up['records_per_s']:,.0f} records/s",
         f"{catch_up['records']:,} records in {catch_up['seconds']:.1f} s; CPU {catch_up['cpu_ms_per_record']:.3f} ms/record", ""],
        ["7 stream", "appends/s with consumer vs without", f"{followed.per_second:,.0f} / {without:,.0f}",
         (f"ratio {ratio:.2f}; without = mean of the slices before ({baseline.per_second:,.0f}) and after "
          f"({after.per_second:,.0f}); p50 latency {followed_p50:.0f} vs {baseline_p50:.0f} / {after_p50:.0f} ms")
         if ratio else "–", ""],
        ["7 stream", "SIGTERM", "clean" if code == 0 and not held else "**NOT clean**",
         f"exit {code} in {sd['seconds']:.1f} s, {len(held)} leases still held; consumer processed "
         f"{sd['consumer_records']} records, {sd['consumer_skipped']} skipped", ""],
    ]
    return out
