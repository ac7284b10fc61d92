"""Provenance: the label a panel shows is the route its reads took, and nothing when none was needed."""

from __future__ import annotations

from sessions_app.models import SessionMeta
from sessions_app.selectors.provenance import ROUTE_LABELS, redis_read, store_read
from sessions_app.selectors.sessions import session_get
from tests.builders import make_session


def test_a_read_says_where_it_went(ddb, redis_client):
    meta = make_session()
    with store_read() as eventual:
        session_get(session_id=meta.session_id)
    with store_read() as consistent:
        session_get(session_id=meta.session_id, consistent=True)
    with store_read() as both:
        session_get(session_id=meta.session_id)
        session_get(session_id=meta.session_id, consistent=True)
    with store_read() as idle:
        pass
    assert (eventual.provenance.source, consistent.provenance.source) == ("DynamoDB", "DynamoDB (ConsistentRead)")
    assert both.provenance.source == "DynamoDB (ConsistentRead)"  # the least-cached route of the block
    assert idle.provenance.route is None and idle.provenance.source is None
    assert eventual.provenance.elapsed_ms > 0


def test_a_failed_read_still_ends_its_record(ddb):
    try:
        with store_read() as failed:
            SessionMeta.get("SESSION#missing", "META")
    except SessionMeta.DoesNotExist:
        pass
    assert failed.provenance.source == "DynamoDB"


def test_redis_reads_say_redis():
    with redis_read() as read:
        pass
    assert read.provenance.source == "Redis" and set(ROUTE_LABELS) == {"dax", "dynamodb", "dynamodb-consistent",
                                                                       "fallback", "redis"}
