"""The bot's hot read: a session's context, through the Redis cache, DAX and DynamoDB."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings

from ..exceptions import InvalidInput
from ..observability import metrics
from ..realtime import context_cache_get, context_cache_put
from .presenters import json_bytes, session_dict, summary_dict, turn_dict
from .sessions import context_read


@dataclass(frozen=True)
class ContextLoad:
    payload: bytes  # response-ready JSON: {"session", "turns" (oldest first), "summary"}
    source: str  # "redis", or the observed DynamoDB route (dynamo.ROUTE_*): dax, dynamodb, dynamodb-consistent, fallback
    elapsed_ms: float
    seq: int  # the newest turn the payload contains


def context_load(*, session_id: str, turns: int | None = None, min_seq: int | None = None) -> ContextLoad:
    """META + the last ``turns`` turns + the latest summary, as JSON bytes.

    Read-your-writes with every cache on: the write path raises a per-session hint in Redis
    after each append, a cached payload is served only if it covers the hint (and ``min_seq``,
    the caller's own last seq, if it passes one), and the store read is bounded by the same
    number (see ``context_read``). With Redis down there is no hint, so the store is read
    strongly consistent unless the caller passed ``min_seq``.
    """
    turns = settings.CONTEXT_DEFAULT_TURNS if turns is None else turns
    if not 1 <= turns <= settings.CONTEXT_MAX_TURNS:
        raise InvalidInput(f"turns must be between 1 and {settings.CONTEXT_MAX_TURNS}", field="turns")
    if min_seq is not None and min_seq < 0:
        raise InvalidInput("min_seq must be >= 0", field="min_seq")
    started = time.perf_counter()
    variant = f"t{turns}"
    cached = context_cache_get(session_id=session_id, variant=variant, min_seq=min_seq)
    if cached.payload is not None:
        metrics.count(metrics.CONTEXT_LOADS, "redis")
        return ContextLoad(payload=cached.payload, source="redis", elapsed_ms=_ms(started), seq=cached.hint or 0)
    known = max(cached.hint or 0, min_seq or 0)
    # Strongly consistent when Redis is down (no hint to bound the read) unless the caller knows
    # its own last seq, and while the change feed says the session changed behind DAX's back.
    ctx = context_read(session_id=session_id, turns=turns, min_seq=known,
                       consistent=(cached.degraded and not min_seq) or cached.consistent)
    payload = json_bytes({
        "session": session_dict(ctx.meta),
        "turns": [turn_dict(t) for t in ctx.turns],
        "summary": summary_dict(ctx.summary),
    })
    seq = int(ctx.meta.turn_count)
    if not cached.degraded:
        context_cache_put(session_id=session_id, variant=variant, seq=seq, payload=payload)
    source = ctx.provenance["source"]
    metrics.count(metrics.CONTEXT_LOADS, "dax" if source == "dax" else "dynamodb")
    return ContextLoad(payload=payload, source=source, elapsed_ms=_ms(started), seq=seq)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
