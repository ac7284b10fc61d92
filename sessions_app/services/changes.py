"""What the change feed does with each change: the handlers of ``settings.STREAM_HANDLERS``.

Each handler takes a batch of :class:`~sessions_app.streams.records.Change` (one shard's, in
stream order), is idempotent (records come at least once) and raises when a store it needs is
away (the batch is retried). ``streams.dispatch`` runs them; docs/architecture.md §Change feed.

- :func:`cache_coherence` — a change this app did not make (TTL, a hand edit, another writer)
  drops the session's cached contexts, moves its hint, and makes readers read consistently while
  DAX may hold the old item; a removed session loses its presence and connection mappings.
  The app's own writes already did their part on the write path and are skipped.
- :func:`live_events` — one small JSON event per change that means something to a person
  (started, turn, closed, handed off, summarised, deleted, expired) on Redis pub/sub.
- :func:`fleet_counters` — turns, sessions started/closed by channel, summaries, TTL expiries
  per minute, counted once each whichever process made them.

A new consumer of changes (the search indexer) is one more function here or anywhere, taking the
same argument, and one more line in ``STREAM_HANDLERS``.
"""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from .. import dynamo
from ..models import SessionStatus
from ..realtime import (
    FleetCount,
    change_events_publish,
    context_cache_external_change,
    fleet_count,
    presence_clear,
    realtime_session_gone,
)
from ..streams.records import ORIGIN_APP, ORIGIN_TTL, Change

SESSION, TURN, SUMMARY = "session", "turn", "summary"

# Event kinds, as subscribers see them.
STARTED, TURN_ADDED, CLOSED, HANDED_OFF, SUMMARISED, DELETED, EXPIRED = (
    "started", "turn", "closed", "handed_off", "summarised", "deleted", "expired")
# The live-operations kinds: a staff member took the session over, or gave it back to the bot.
TAKEN_OVER, HANDED_BACK = "taken_over", "handed_back"
DELIVERY = "delivery"  # a staff reply's delivery to the bot runtime changed state


def _dax_stale_seconds() -> float:
    # Without DAX nothing else caches items, so no consistent-read window is needed.
    return settings.DAX_ITEM_TTL_SECONDS if dynamo.dax_enabled() else 0.0


def _status_change(change: Change) -> tuple[str | None, str | None]:
    return (change.old or {}).get("status"), (change.new or {}).get("status")


# --- cache coherence ------------------------------------------------------------------------------
def cache_coherence(changes: Sequence[Change]) -> None:
    """Keep Redis's picture of each session true to DynamoDB after changes the app did not make."""
    gone: set[str] = set()
    external: dict[str, int | None] = {}
    offline: set[str] = set()
    for change in changes:
        session_id = change.session_id
        if session_id is None or change.item_type == "msgid":
            continue
        if change.kind == "REMOVE" and change.item_type == SESSION:
            gone.add(session_id)
            external.pop(session_id, None)
            continue
        if change.origin == ORIGIN_APP or session_id in gone:
            continue
        seq = external.get(session_id)
        if change.item_type == SESSION and change.new is not None:
            count = change.new.get("turn_count")
            seq = max(seq or 0, int(count)) if count is not None else seq
            if _status_change(change)[1] == SessionStatus.CLOSED:
                offline.add(session_id)
        external[session_id] = seq
    stale = _dax_stale_seconds()
    for session_id in sorted(gone):
        realtime_session_gone(session_id=session_id)
    for session_id, seq in sorted(external.items()):
        context_cache_external_change(session_id=session_id, seq=seq, dax_stale_seconds=stale)
    for session_id in sorted(offline):
        presence_clear(session_id=session_id)


# --- live events ----------------------------------------------------------------------------------
def change_event(change: Change) -> dict | None:
    """The event a change means to a person watching, or None (bookkeeping, markers)."""
    session_id = change.session_id
    if session_id is None:
        return None
    kind, seq, extra = None, None, {}
    image = change.image
    if change.item_type == SESSION:
        seq = image.get("turn_count")
        if change.kind == "INSERT":
            kind = STARTED
            extra = {"channel": image.get("channel")}
        elif change.kind == "REMOVE":
            kind = EXPIRED if change.origin == ORIGIN_TTL else DELETED
        else:
            before, after = _status_change(change)
            owner_before, owner_after = (change.old or {}).get("owner"), (change.new or {}).get("owner")
            if before != after and after == SessionStatus.CLOSED:
                kind = CLOSED
            elif before != after and after == SessionStatus.HANDED_OFF:
                kind = HANDED_OFF
            elif before == SessionStatus.HANDED_OFF and after == SessionStatus.ACTIVE:
                kind = HANDED_BACK
            elif owner_after and owner_after != owner_before:
                kind = TAKEN_OVER
                extra = {"owner": change.new.get("owner_name") or owner_after}
            elif owner_before and not owner_after:
                kind = HANDED_OFF  # the owner's hold lapsed: back in the queue
    elif change.kind == "INSERT" and change.item_type == TURN:
        kind, seq = TURN_ADDED, image.get("seq")
        extra = {"role": image.get("role")}
    elif change.kind == "MODIFY" and change.item_type == TURN and \
            (change.old or {}).get("delivery_state") != image.get("delivery_state"):
        kind, seq = DELIVERY, image.get("seq")
        extra = {"state": image.get("delivery_state")}
    elif change.kind == "INSERT" and change.item_type == SUMMARY:
        kind, seq = SUMMARISED, image.get("through_seq")
    if kind is None:
        return None
    at = change.changed_at
    return {"id": change.seq, "session_id": session_id, "kind": kind, "seq": seq,
            "at": at.isoformat(timespec="milliseconds"), "at_ms": int(at.timestamp() * 1000), **extra}


def live_events(changes: Sequence[Change]) -> None:
    """Publish each change's event on the session's channel and the activity channel."""
    change_events_publish(events=[e for e in map(change_event, changes) if e is not None])


# --- fleet counters -----------------------------------------------------------------------------
def fleet_counts_of(change: Change) -> list[FleetCount]:
    session_id = change.session_id
    if session_id is None:
        return []
    image, at = change.image, change.changed_at.timestamp()
    if change.item_type == TURN and change.kind == "INSERT":
        return [FleetCount(session_id, "turn", int(image["seq"]), "max", "turns", at)]
    if change.item_type == SUMMARY and change.kind == "INSERT":
        return [FleetCount(session_id, "summary", int(image["through_seq"]), "max", "summaries", at)]
    if change.item_type != SESSION:
        return []
    channel = image.get("channel", "unknown")
    if change.kind == "INSERT":
        counts = [FleetCount(session_id, "started", 1, "once", f"started:{channel}", at)]
        if image.get("status") == SessionStatus.CLOSED:  # a closed session loaded in bulk
            counts.append(FleetCount(session_id, "closed", 1, "once", f"closed:{channel}", at))
        return counts
    if change.kind == "REMOVE":
        return [FleetCount(session_id, "expired", 1, "once", "expired", at)] if change.origin == ORIGIN_TTL else []
    before, after = _status_change(change)
    if before != after and after == SessionStatus.CLOSED:
        return [FleetCount(session_id, "closed", 1, "once", f"closed:{channel}", at)]
    return []


def fleet_counters(changes: Sequence[Change]) -> None:
    """Count turns, starts, closes, summaries and TTL expiries per minute, fleet-wide."""
    fleet_count(counts=[c for change in changes for c in fleet_counts_of(change)])
