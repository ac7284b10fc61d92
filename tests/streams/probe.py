"""A change handler for tests that run consumers as subprocesses: it records which consumer
applied which records of which shard, and when (a Redis list the test reads), and can be made
slow (``PROBE_BATCH_SECONDS``) so a test can kill a consumer in the middle of a batch, or fail
on one record (``PROBE_FAIL_SEQ``)."""

from __future__ import annotations

import json
import os
import time

from sessions_app.realtime import redis_connection

PROBE_KEY = "test:probe:applied"


def record(changes) -> None:
    started = time.time()
    fail_seq = os.environ.get("PROBE_FAIL_SEQ")
    if fail_seq and any(c.seq == fail_seq for c in changes):
        raise ValueError(f"probe refuses record {fail_seq}")
    pause = float(os.environ.get("PROBE_BATCH_SECONDS", "0"))
    if pause:
        time.sleep(pause)
    redis_connection().rpush(PROBE_KEY, json.dumps({
        "pid": os.getpid(), "seqs": [c.seq for c in changes], "shards": sorted({c.shard_id or "" for c in changes}),
        "start": started, "end": time.time(),
    }))
    redis_connection().expire(PROBE_KEY, 3600)


def applied(client) -> list[dict]:
    return [json.loads(row) for row in client.lrange(PROBE_KEY, 0, -1)]
