"""What the stream consumers report about themselves, for the overview and ``stream_consume
--status``: records processed, lag (now minus each record's change time) and the last error.

Every consumer process writes here, so the numbers are the fleet's, whichever process reads
them. Ten-second buckets with a day of TTL; lag percentiles come from samples (at most
``STREAM_LAG_SAMPLES`` per bucket — a busy bucket keeps a uniform subsample of each batch), the
maximum and the record count are exact. The two keys of a bucket share a hash tag (keys.py),
so the one script that writes both stays in one slot on a cluster.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sessions_app.exceptions import RedisUnavailable

from . import keys
from .client import LuaScript, redis_boundary, redis_connection

# Per batch at most this many samples: a 1,000-record batch costs one small RPUSH, not 1,000.
_SAMPLES_PER_BATCH = 100

# ARGV: TTL, records, largest lag, samples kept per bucket, number of origin pairs, the pairs
# (field, count), then the lag samples.
_record_script = LuaScript(
    """
redis.call('HINCRBY', KEYS[1], 'records', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'batches', 1)
local max = tonumber(redis.call('HGET', KEYS[1], 'lag_max_ms') or '-1')
if tonumber(ARGV[3]) > max then redis.call('HSET', KEYS[1], 'lag_max_ms', ARGV[3]) end
local pairs_end = 5 + 2 * tonumber(ARGV[5])
for i = 6, pairs_end, 2 do redis.call('HINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], ARGV[1])
if #ARGV > pairs_end then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, pairs_end + 1))
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return 1
"""
)


def stream_progress_record(*, lags_ms: Sequence[float], origins: Sequence[str] = (), now: float | None = None) -> None:
    """Record one processed batch: its size, its records' lags (ms) and origins (who made each
    change: records.ORIGINS). Redis down: logged and counted by the boundary, no exception
    (progress reporting never stops the consumer)."""
    if not lags_ms:
        return
    by_origin = Counter(origins)
    now = time.time() if now is None else now
    bucket = keys.stream_bucket(epoch_seconds=now)
    samples = list(lags_ms) if len(lags_ms) <= _SAMPLES_PER_BATCH else random.sample(list(lags_ms), _SAMPLES_PER_BATCH)
    try:
        with redis_boundary("stream_progress_record"):
            _record_script(
                keys=[keys.stream_progress_key(bucket=bucket), keys.stream_lag_samples_key(bucket=bucket)],
                args=[keys.stats_ttl_seconds(), len(lags_ms), int(max(lags_ms)), keys.STREAM_LAG_SAMPLES,
                      len(by_origin), *(x for origin, n in sorted(by_origin.items()) for x in (f"origin:{origin}", n)),
                      *(int(max(0, s)) for s in samples)],
            )
    except RedisUnavailable:
        pass


def stream_error_record(*, consumer: str, shard: str | None, message: str, now: float | None = None) -> None:
    """Remember the consumers' latest error. Redis down: no exception."""
    body = json.dumps({"at": time.time() if now is None else now, "consumer": consumer, "shard": shard,
                       "message": message[:500]})
    try:
        with redis_boundary("stream_error_record"):
            redis_connection().set(keys.stream_error_key(), body, ex=keys.stats_ttl_seconds())
    except RedisUnavailable:
        pass


@dataclass(frozen=True, slots=True)
class StreamProgress:
    seconds: int
    records: int
    batches: int
    lag_p50_ms: float | None  # None: no record processed in the window
    lag_p95_ms: float | None
    lag_max_ms: float | None
    last_error: dict | None
    origins: dict[str, int]  # records processed by who made the change (app, ttl, outside, delete)

    @property
    def records_per_second(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


def _percentile(ordered: list[int], fraction: float) -> float | None:
    if not ordered:
        return None
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


def stream_progress(*, seconds: int = 60, now: float | None = None) -> StreamProgress | None:
    """The consumers' progress over the last ``seconds`` (whole ten-second buckets, the current
    one included). Redis down: None (unknown)."""
    now = time.time() if now is None else now
    count = max(1, seconds // keys.STREAM_BUCKET_SECONDS)
    buckets = [keys.stream_bucket(epoch_seconds=now - keys.STREAM_BUCKET_SECONDS * i) for i in range(count)]
    try:
        with redis_boundary("stream_progress"):
            pipe = redis_connection().pipeline(transaction=False)
            for bucket in buckets:
                pipe.hgetall(keys.stream_progress_key(bucket=bucket))
                pipe.lrange(keys.stream_lag_samples_key(bucket=bucket), 0, -1)
            pipe.get(keys.stream_error_key())
            rows = pipe.execute()
    except RedisUnavailable:
        return None
    error = rows.pop()
    records = batches = 0
    lag_max: int | None = None
    samples: list[int] = []
    origins: Counter[str] = Counter()
    for counts, sample in zip(rows[0::2], rows[1::2], strict=True):
        counts = {k.decode(): int(v) for k, v in counts.items()}
        records += counts.get("records", 0)
        batches += counts.get("batches", 0)
        if "lag_max_ms" in counts:
            lag_max = max(lag_max or 0, counts["lag_max_ms"])
        origins.update({k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("origin:")})
        samples += [int(s) for s in sample]
    samples.sort()
    return StreamProgress(
        seconds=count * keys.STREAM_BUCKET_SECONDS, records=records, batches=batches,
        lag_p50_ms=_percentile(samples, 0.5), lag_p95_ms=_percentile(samples, 0.95),
        lag_max_ms=float(lag_max) if lag_max is not None else None,
        last_error=json.loads(error) if error else None,
        origins=dict(origins),
    )
