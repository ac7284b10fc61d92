"""Live change events on Redis pub/sub, and the recent ones for the overview's activity feed.

The stream consumer (``services.changes.live_events_publish``) publishes one small JSON event per
change that means something to a person watching: a session started, a turn, a close, a hand-off,
a summary, a delete, a TTL expiry. Each goes to the session's channel and to the global activity
channel, and into a capped sorted set the overview reads. Events carry the stream record's
sequence number as ``id``: the stream delivers at least once, so a subscriber may see an event
twice and drops the repeat by id; the sorted set stores a repeat once (same member).

Redis down: raises ``RedisUnavailable`` from publishing (the consumer retries the batch: events
are part of what a record's processing must achieve) and returns None from reads.

Classic pub/sub (PUBLISH/SUBSCRIBE), on a single Redis and on a cluster alike: a cluster forwards
every PUBLISH to every node, so a subscriber connected to any node hears it, and the channels
need no hash tags. (Sharded pub/sub — SPUBLISH/SSUBSCRIBE, one shard per channel — would spare
the cluster bus that fan-out, at the price of subscriptions that follow their slot's moves: the
upgrade for a cluster with many shards or a high event rate.) redis-py refuses PUBLISH in a
cluster pipeline, so on a cluster the sorted set is written by a cluster pipeline and the
publishes go out in one plain pipeline to one node: the primary of ``activity:recent``'s slot,
which the first pipeline has just reached.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from sessions_app.exceptions import RedisUnavailable

from . import keys
from .client import redis_boundary, redis_cluster_enabled, redis_connection


def event_json(event: dict) -> bytes:
    # Sorted keys and no spaces: the same event always encodes to the same bytes, which is what
    # lets the sorted set keep a redelivered event once.
    return json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def change_events_publish(*, events: Sequence[dict]) -> int:
    """Publish ``events`` (each with ``id``, ``session_id``, ``kind``, ``seq``, ``at`` and
    ``at_ms``) on their session's channel and the activity channel, and keep the newest
    ``ACTIVITY_RECENT_LIMIT`` for the activity feed. One pipelined round trip. Returns how many
    events were published. Redis down: raises ``RedisUnavailable``."""
    if not events:
        return 0
    recent = keys.activity_recent_key()
    cluster = redis_cluster_enabled()
    bodies = [(keys.events_session_channel(session_id=event["session_id"]), event_json(event), int(event["at_ms"]))
              for event in events]
    with redis_boundary("change_events_publish"):
        client = redis_connection()
        # Single Redis: one pipeline, one round trip. Cluster: two (see the module docstring).
        pipe = client.pipeline(transaction=False)
        for channel, body, at_ms in bodies:
            if not cluster:
                pipe.publish(channel, body)
                pipe.publish(keys.events_activity_channel(), body)
            pipe.zadd(recent, {body: at_ms})
        pipe.zremrangebyrank(recent, 0, -keys.ACTIVITY_RECENT_LIMIT - 1)
        pipe.expire(recent, keys.activity_ttl_seconds())
        pipe.execute()
        if cluster:
            node = client.get_redis_connection(client.get_node_from_key(recent))
            publish = node.pipeline(transaction=False)
            for channel, body, _at_ms in bodies:
                publish.publish(channel, body)
                publish.publish(keys.events_activity_channel(), body)
            publish.execute()
    return len(events)


def activity_recent(*, limit: int = 50) -> list[dict] | None:
    """The newest change events, newest first, at most ``limit``. Redis down: None (unknown)."""
    try:
        with redis_boundary("activity_recent"):
            rows = redis_connection().zrange(keys.activity_recent_key(), 0, max(0, limit - 1), desc=True)
    except RedisUnavailable:
        return None
    return [json.loads(row) for row in rows]


def activity_forget_session(*, session_id: str) -> int:
    """Remove the session's events from the activity feed (privacy delete); returns how many.
    Redis down: raises ``RedisUnavailable``."""
    recent = keys.activity_recent_key()
    with redis_boundary("activity_forget_session"):
        client = redis_connection()
        members = [m for m in client.zrange(recent, 0, -1) if json.loads(m).get("session_id") == session_id]
        return int(client.zrem(recent, *members)) if members else 0
