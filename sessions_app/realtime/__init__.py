"""The one package that talks to Redis: rate limit, write lock, presence, connections, context cache.

Every key is built in ``keys.py`` and has a TTL; every function documents what it does when
Redis is unavailable (docs/architecture.md §Redis). Import the public API from here.
"""

from .client import degraded_events, degraded_events_reset, redis_boundary, redis_connection
from .connections import connection_delete, connection_get, connection_put, connections_for_session
from .context_cache import (
    CacheMinute,
    CacheRead,
    context_cache_external_change,
    context_cache_forget,
    context_cache_get,
    context_cache_hint_raise,
    context_cache_hit_ratio,
    context_cache_invalidate,
    context_cache_put,
    context_cache_stats,
    context_cache_turn_written,
)
from .events import activity_forget_session, activity_recent, change_events_publish
from .fleet import FleetCount, FleetMinute, fleet_count, fleet_stats
from .locks import LockState, session_write_lock, summary_lock_acquire, summary_lock_release
from .presence import (
    Presence,
    presence_clear,
    presence_get,
    presence_get_many,
    presence_heartbeat,
    presence_online,
    presence_online_count,
)
from .privacy import realtime_forget_session, realtime_keys_for_session, realtime_session_gone
from .ratelimit import RateDecision, RateMinute, rate_limit_hit, rate_limit_peek, rate_limit_stats
from .staff_presence import StaffViewer, staff_viewing, staff_viewing_ping
from .stream_progress import StreamProgress, stream_error_record, stream_progress, stream_progress_record

__all__ = [
    "StaffViewer",
    "staff_viewing",
    "staff_viewing_ping",
    "FleetCount",
    "FleetMinute",
    "StreamProgress",
    "activity_forget_session",
    "activity_recent",
    "change_events_publish",
    "context_cache_external_change",
    "fleet_count",
    "fleet_stats",
    "stream_error_record",
    "stream_progress",
    "stream_progress_record",
    "CacheMinute",
    "CacheRead",
    "LockState",
    "Presence",
    "RateDecision",
    "RateMinute",
    "connection_delete",
    "connection_get",
    "connection_put",
    "connections_for_session",
    "context_cache_forget",
    "context_cache_get",
    "context_cache_hint_raise",
    "context_cache_hit_ratio",
    "context_cache_invalidate",
    "context_cache_put",
    "context_cache_stats",
    "context_cache_turn_written",
    "degraded_events",
    "degraded_events_reset",
    "presence_clear",
    "presence_get",
    "presence_get_many",
    "presence_heartbeat",
    "presence_online",
    "presence_online_count",
    "rate_limit_hit",
    "rate_limit_peek",
    "rate_limit_stats",
    "realtime_forget_session",
    "realtime_session_gone",
    "summary_lock_acquire",
    "summary_lock_release",
    "realtime_keys_for_session",
    "redis_boundary",
    "redis_connection",
    "session_write_lock",
]
