"""Keeping the search index true to DynamoDB: the change-feed handler (``search_index``, in
``settings.STREAM_HANDLERS``) and the rebuild from the table (``search_reindex``, by the day
index — never a Scan). docs/architecture.md §Search.

What each change does to the index:
- a session's META written → its filter fields (customer, channel, status, start, TTL) upserted;
- a session's META removed (privacy delete, TTL expiry, anyone's delete) → every document of it
  out, and a tombstone so a late turn of it stays out;
- a turn or summary written → its document upserted (a MODIFY that left the text alone — a
  delivery state — is skipped); removed → its document out;
- client-message-id markers mean nothing here.

A turn whose session the index has never seen (the indexer started after the session did; the
stream keeps 24 hours) brings its META from DynamoDB first; a session no longer in the table is
dropped (its removal is on its way through the feed).
"""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from django.conf import settings

from .. import dynamo, keys
from ..clock import utcnow
from ..models import ChatItem, SessionMeta, Summary, Turn
from ..search import search_engine
from ..search.engine import SUMMARY, TURN, IndexBatch, SessionDoc, TurnDoc
from ..selectors.sessions import session_get_many
from ..streams.records import Change

log = logging.getLogger("sessions_app.search")

_PYNAMO_TIME = "%Y-%m-%dT%H:%M:%S.%f%z"  # UTCDateTimeAttribute's format, as stream images carry it
SUMMARY_ROLE = "summary"


# --- documents from items ---------------------------------------------------------------------
def _time(raw) -> datetime:
    return datetime.strptime(raw, _PYNAMO_TIME) if isinstance(raw, str) else raw


def _ttl(raw) -> datetime | None:
    return datetime.fromtimestamp(int(raw), tz=timezone.utc) if raw is not None else None


def _text(raw) -> str:
    # CompressedTextAttribute's encoding (models/table.py): zlib over UTF-8.
    return zlib.decompress(raw).decode("utf-8") if isinstance(raw, (bytes, bytearray)) else str(raw)


def session_doc_of_image(image: dict) -> SessionDoc:
    return SessionDoc(session_id=image["session_id"], customer_id=image["customer_id"], channel=image["channel"],
                      status=image.get("status", "active"), started_at=_time(image["started_at"]),
                      expires_at=_ttl(image.get("ttl")))


def session_doc_of(meta: SessionMeta) -> SessionDoc:
    return SessionDoc(session_id=meta.session_id, customer_id=meta.customer_id, channel=meta.channel,
                      status=meta.status, started_at=meta.started_at, expires_at=meta.expires_at)


def doc_of_image(session_id: str, item_type: str, image: dict) -> TurnDoc:
    if item_type == SUMMARY:
        return TurnDoc(session_id=session_id, seq=int(image["through_seq"]), role=SUMMARY_ROLE,
                       text=_text(image["text"]), created_at=_time(image["created_at"]), kind=SUMMARY)
    return TurnDoc(session_id=session_id, seq=int(image["seq"]), role=image["role"], text=_text(image["text"]),
                   created_at=_time(image["created_at"]))


def doc_of(session_id: str, item: Turn | Summary) -> TurnDoc:
    if isinstance(item, Summary):
        return TurnDoc(session_id=session_id, seq=int(item.through_seq), role=SUMMARY_ROLE, text=item.text,
                       created_at=item.created_at, kind=SUMMARY)
    return TurnDoc(session_id=session_id, seq=int(item.seq), role=item.role, text=item.text, created_at=item.created_at)


# --- the change-feed handler ------------------------------------------------------------------
def index_batch_of(changes: Sequence[Change]) -> IndexBatch:
    """What ``changes`` (in stream order) do to the index; pure (tests read it directly)."""
    sessions: dict[str, SessionDoc] = {}
    docs: dict[tuple[str, str, int], TurnDoc] = {}
    doc_deletes: dict[tuple[str, str, int], None] = {}
    session_deletes: dict[str, None] = {}
    newest = None
    for change in changes:
        newest = change.changed_at if newest is None or change.changed_at > newest else newest
        session_id = change.session_id
        if session_id is None or change.item_type not in ("session", TURN, SUMMARY):
            continue
        if change.item_type == "session":
            if change.kind == "REMOVE":
                session_deletes[session_id] = None
            else:
                sessions[session_id] = session_doc_of_image(change.new)  # the last image of the batch wins
            continue
        image = change.image
        kind = SUMMARY if change.item_type == SUMMARY else TURN
        key = (session_id, kind, int(image["through_seq"] if kind == SUMMARY else image["seq"]))
        if change.kind == "REMOVE":
            docs.pop(key, None)
            doc_deletes[key] = None
        elif change.kind == "INSERT" or (change.old or {}).get("text") != change.new.get("text"):
            doc_deletes.pop(key, None)
            docs[key] = doc_of_image(session_id, change.item_type, change.new)
    return IndexBatch(sessions=list(sessions.values()), docs=list(docs.values()), doc_deletes=list(doc_deletes),
                      session_deletes=list(session_deletes), newest_change=newest)


def search_index(changes: Sequence[Change]) -> None:
    """The change-feed handler (``settings.STREAM_HANDLERS``): one atomic batch per call."""
    batch = index_batch_of(changes)
    if not batch:
        return
    engine = search_engine()
    unseen = {d.session_id for d in batch.docs} - {s.session_id for s in batch.sessions} - set(batch.session_deletes)
    if unseen:
        unseen -= engine.sessions_known(unseen)
    if unseen:
        found = {meta.session_id: session_doc_of(meta) for meta in session_get_many(session_ids=sorted(unseen))}
        batch.sessions.extend(found.values())
        batch.docs = [d for d in batch.docs if d.session_id not in unseen or d.session_id in found]
    engine.apply(batch)


# --- the rebuild ------------------------------------------------------------------------------
def _session_batch(session_ids: Iterable[str]) -> IndexBatch:
    """Each session's META, turns and summaries, read from its partition (one Query each, in
    parallel: a page of sessions is a few hundred small Queries)."""
    def read(session_id: str) -> list[ChatItem]:
        with dynamo.dax_bypassed():  # a rebuild would only flood DAX's cache
            return list(ChatItem.query(keys.session_pk(session_id)))

    batch = IndexBatch()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for session_id, items in zip(session_ids, pool.map(read, session_ids)):
            metas = [i for i in items if isinstance(i, SessionMeta)]
            if not metas:
                continue  # deleted meanwhile
            batch.sessions.append(session_doc_of(metas[0]))
            batch.docs.extend(doc_of(session_id, i) for i in items if isinstance(i, (Turn, Summary)))
    return batch


def search_reindex_sessions(*, session_ids: Sequence[str]) -> int:
    """Index these sessions from DynamoDB now (the demo seed; a repair). Returns documents written."""
    session_ids = list(dict.fromkeys(session_ids))
    written = 0
    for start in range(0, len(session_ids), 100):
        written += search_engine().apply(_session_batch(session_ids[start:start + 100]))
    return written


@dataclass
class ReindexProgress:
    day_from: date
    day_to: date
    day: date  # the day being read (days go newest first)
    shard: int
    after: dict | None  # the by_day Query's LastEvaluatedKey within (day, shard)
    sessions: int = 0
    docs: int = 0

    def dumps(self) -> str:
        return json.dumps({"day_from": self.day_from.isoformat(), "day_to": self.day_to.isoformat(),
                           "day": self.day.isoformat(), "shard": self.shard, "after": self.after,
                           "sessions": self.sessions, "docs": self.docs})

    @classmethod
    def loads(cls, raw: str) -> ReindexProgress:
        data = json.loads(raw)
        return cls(day_from=date.fromisoformat(data["day_from"]), day_to=date.fromisoformat(data["day_to"]),
                   day=date.fromisoformat(data["day"]), shard=data["shard"], after=data["after"],
                   sessions=data["sessions"], docs=data["docs"])


REINDEX_JOB = "search_reindex"
REINDEX_PAGE = 100


def search_reindex_saved() -> ReindexProgress | None:
    raw = search_engine().progress_get(REINDEX_JOB)
    return ReindexProgress.loads(raw) if raw else None


def search_reindex(*, day_from: date | None = None, day_to: date | None = None, resume: bool = True,
                   on_page: Callable[[ReindexProgress], None] | None = None,
                   stop: Callable[[], bool] | None = None) -> ReindexProgress:
    """Rebuild the index from the table, walking the ``by_day`` index newest day first (every
    session is in exactly one (day, shard) partition; no Scan). The position is saved after each
    page, so an interrupted run resumes where it stopped (``resume``; a run over other days
    starts afresh). Default range: as far back as sessions live (SESSION_TTL_DAYS) to today.
    ``stop`` is asked between pages (a signal handler's flag); the position stays saved."""
    engine = search_engine()
    today = utcnow().date()
    day_to = day_to or today
    day_from = day_from or day_to - timedelta(days=settings.SESSION_TTL_DAYS)
    saved = search_reindex_saved() if resume else None
    if saved and (saved.day_from, saved.day_to) == (day_from, day_to):
        progress = saved
    else:
        progress = ReindexProgress(day_from=day_from, day_to=day_to, day=day_to, shard=0, after=None)
    shards = settings.DYNAMODB_DAY_SHARDS
    while progress.day >= day_from:
        while progress.shard < shards:
            if stop and stop():
                engine.progress_set(REINDEX_JOB, progress.dumps())
                return progress
            with dynamo.dax_bypassed():
                page = SessionMeta.by_day.query(keys.day_pk(progress.day, progress.shard), limit=REINDEX_PAGE,
                                                last_evaluated_key=progress.after)
                session_ids = [meta.session_id for meta in page]
            if session_ids:
                progress.docs += engine.apply(_session_batch(session_ids))
                progress.sessions += len(session_ids)
            progress.after = page.last_evaluated_key
            if progress.after is None:
                progress.shard += 1
            engine.progress_set(REINDEX_JOB, progress.dumps())
            if on_page:
                on_page(progress)
        progress.day -= timedelta(days=1)
        progress.shard, progress.after = 0, None
    engine.progress_set(REINDEX_JOB, None)  # done: the next run starts afresh
    return progress


# --- retention --------------------------------------------------------------------------------
def search_retention(*, now: datetime | None = None) -> list[str]:
    """Drop the index's month partitions that only hold expired sessions' documents (an engine
    with partitions: PostgreSQL). A turn of month M belongs to a session started by the end of
    M, which expires by then + SESSION_TTL_DAYS: every month before the one holding
    ``now - SESSION_TTL_DAYS`` is past. The change feed's TTL removals delete the same rows one
    by one; this is the cheap way for whole months (and catches any removal the feed missed).
    The embedded engine has no partitions and relies on the feed and the TTL filter."""
    engine = search_engine()
    drop = getattr(engine, "partitions_drop_before", None)
    if drop is None:
        return []
    oldest_live = ((now or utcnow()) - timedelta(days=settings.SESSION_TTL_DAYS)).date().replace(day=1)
    return drop(oldest_live)
