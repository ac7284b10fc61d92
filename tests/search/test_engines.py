"""The engines against the corpus (tests/search/corpus.py): the same query semantics, with recall
and precision measured and asserted; idempotent indexing, tombstones, TTL, filters, both orders
and their cursors. Every test runs on every engine (conftest.py)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from sessions_app.exceptions import InvalidInput
from sessions_app.search.engine import RELEVANCE, SUMMARY, IndexBatch, SearchFilter, SessionDoc, TurnDoc

from .corpus import DOCS, QUERIES

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
# Where character bigrams are known to be wrong (corpus.py says why); everything else is exact.
KNOWN_FALSE_HITS = {"京都": {"tokyo"}}


def _session(session_id, *, customer_id="c", channel="web", status="active", started_at=T0, expires_at=None):
    return SessionDoc(session_id=session_id, customer_id=customer_id, channel=channel, status=status,
                      started_at=started_at, expires_at=expires_at)


def _turn(session_id, seq, text, at=T0, role="user", kind="turn"):
    return TurnDoc(session_id=session_id, seq=seq, role=role, text=text, created_at=at, kind=kind)


def _corpus(engine):
    engine.apply(IndexBatch(
        sessions=[_session(key, customer_id=f"cust-{i}") for i, key in enumerate(DOCS)],
        docs=[_turn(key, 1, text, T0 + timedelta(seconds=i)) for i, (key, text) in enumerate(DOCS.items())]))


def _ids(page):
    return [h.session_id for h in page.hits]


def test_the_corpus_recall_and_precision(engine):
    _corpus(engine)
    expected_total = found_total = right_total = 0
    for query, expected in QUERIES:
        found = {hit.session_id for hit in engine.search(query, limit=100).hits}
        assert found - expected == KNOWN_FALSE_HITS.get(query, set()), query
        assert expected <= found, query
        expected_total += len(expected)
        found_total += len(found)
        right_total += len(found & expected)
    recall, precision = right_total / expected_total, right_total / found_total
    print(f"{engine.name} corpus: {len(DOCS)} turns, {len(QUERIES)} queries: recall {recall:.3f}, precision {precision:.3f}")
    assert recall == 1.0
    assert precision >= 0.98


def test_indexing_again_replaces_and_a_deleted_session_stays_deleted(engine):
    _corpus(engine)
    _corpus(engine)  # the change feed delivers at least once
    assert _ids(engine.search("表紙")) == ["cover"]
    assert engine.apply(IndexBatch(docs=[_turn("cover", 1, "表示が変です")])) == 1
    assert engine.search("表紙").hits == []  # replaced, not added
    assert set(_ids(engine.search("表示"))) == {"cover", "display"}
    assert engine.session_delete("display") == 1
    assert _ids(engine.search("表示")) == ["cover"]
    assert engine.session_delete("display") == 0
    # A turn of the deleted session still on its way through the change feed stays out.
    assert engine.apply(IndexBatch(sessions=[_session("display")], docs=[_turn("display", 2, "表示 again")])) == 0
    assert _ids(engine.search("表示")) == ["cover"]
    assert "display" in engine.sessions_known(["display", "nobody"])
    assert engine.sessions_known(["nobody"]) == set()


def test_one_batch_adds_updates_and_deletes_in_order(engine):
    engine.apply(IndexBatch(sessions=[_session("a"), _session("b")],
                            docs=[_turn("a", 1, "在庫 あり"), _turn("a", 2, "在庫 なし"), _turn("b", 1, "在庫")]))
    engine.apply(IndexBatch(sessions=[_session("a", status="closed")], doc_deletes=[("a", "turn", 2)],
                            session_deletes=["b"], newest_change=T0 + timedelta(minutes=5)))
    assert [(h.session_id, h.seq) for h in engine.search("在庫").hits] == [("a", 1)]
    assert _ids(engine.search("在庫", filters=SearchFilter(status="closed"))) == ["a"]
    assert engine.search("在庫", filters=SearchFilter(status="active")).hits == []
    state = engine.state()
    assert state.sessions == 1 and state.newest_change_at == T0 + timedelta(minutes=5)
    engine.apply(IndexBatch(newest_change=T0))  # an older batch never moves it back
    assert engine.state().newest_change_at == T0 + timedelta(minutes=5)


def test_summaries_are_documents_of_their_own(engine):
    engine.apply(IndexBatch(sessions=[_session("a")], docs=[
        _turn("a", 1, "配送について"), _turn("a", 1, "お客様は配送の遅れを問い合わせ", role="summary", kind=SUMMARY)]))
    hits = engine.search("配送").hits
    assert sorted((h.kind, h.seq, h.role) for h in hits) == [("summary", 1, "summary"), ("turn", 1, "user")]


def test_a_session_past_its_ttl_is_never_returned(engine):
    engine.apply(IndexBatch(sessions=[_session("old", expires_at=T0 + timedelta(days=1)), _session("new")],
                            docs=[_turn("old", 1, "返品したい"), _turn("new", 1, "返品したい")]))
    assert set(_ids(engine.search("返品", now=T0))) == {"old", "new"}
    assert _ids(engine.search("返品", now=T0 + timedelta(days=1))) == ["new"]  # DynamoDB may not have removed it yet


def test_the_list_filters(engine):
    day = timedelta(days=1)
    engine.apply(IndexBatch(
        sessions=[_session("w1", channel="web", customer_id="alice", started_at=T0),
                  _session("l2", channel="line", customer_id="bob", started_at=T0 + day),
                  _session("w3", channel="web", customer_id="bob", started_at=T0 + 2 * day, status="closed")],
        docs=[_turn(s, 1, "ONE PIECE 105巻", T0 + i * day + timedelta(hours=1)) for i, s in enumerate(["w1", "l2", "w3"])]))
    search = lambda **f: _ids(engine.search("105", filters=SearchFilter(**f)))  # noqa: E731
    assert search() == ["w3", "l2", "w1"]
    assert search(channel="web") == ["w3", "w1"]
    assert search(customer_id="bob") == ["w3", "l2"]
    assert search(status="closed") == ["w3"]
    assert search(day_from=date(2026, 12, 2)) == ["w3", "l2"]
    assert search(day_to=date(2026, 12, 2)) == ["l2", "w1"]
    assert search(day_from=date(2026, 12, 2), day_to=date(2026, 12, 2), channel="line") == ["l2"]


@pytest.mark.parametrize("order", ["newest", "relevance"])
def test_a_cursor_neither_skips_nor_repeats(engine, order):
    engine.apply(IndexBatch(sessions=[_session(f"s-{i}") for i in range(10)], docs=[
        _turn(f"s-{i}", i, "在庫 " * (1 + i % 4) + f"{i}", T0 + timedelta(seconds=i // 3)) for i in range(10)]))
    seen, cursor = [], None
    while True:
        page = engine.search("在庫", order=order, limit=4, cursor=cursor)
        seen.extend(h.seq for h in page.hits)
        cursor = page.cursor
        if cursor is None:
            break
    assert sorted(seen) == list(range(10))
    if order == "newest":
        assert [s // 3 for s in seen] == sorted((s // 3 for s in seen), reverse=True)


def test_relevance_puts_the_turn_about_it_before_the_passing_mention(engine):
    engine.apply(IndexBatch(sessions=[_session("passing"), _session("about")], docs=[
        _turn("passing", 1, "I asked about shipping, payment, gift wrap, points and the stock of vol. 105 too",
              T0 + timedelta(minutes=1)),
        _turn("about", 1, "Stock? Is it in stock? When is stock back?", T0)]))
    assert _ids(engine.search("stock")) == ["passing", "about"]
    assert _ids(engine.search("stock", order=RELEVANCE)) == ["about", "passing"]


def test_bad_cursors_and_orders_are_invalid_input_naming_the_field(engine):
    with pytest.raises(InvalidInput) as raised:
        engine.search("在庫", cursor="not-a-cursor")
    assert raised.value.field == "cursor"
    engine.apply(IndexBatch(sessions=[_session("a")], docs=[_turn("a", i, "在庫") for i in range(3)]))
    cursor = engine.search("在庫", limit=1).cursor
    with pytest.raises(InvalidInput) as raised:
        engine.search("在庫", order=RELEVANCE, cursor=cursor)
    assert raised.value.field == "cursor"
    with pytest.raises(InvalidInput) as raised:
        engine.search("在庫", order="oldest")
    assert raised.value.field == "order"


def test_progress_is_kept_until_cleared(engine):
    assert engine.progress_get("reindex") is None
    engine.progress_set("reindex", "2026-12-01")
    assert engine.progress_get("reindex") == "2026-12-01"
    engine.progress_set("reindex", None)
    assert engine.progress_get("reindex") is None


def test_newest_first_pages_run_across_months_in_order(engine):
    # The PostgreSQL engine reads month partitions newest first until a page is full.
    times = [T0 - timedelta(days=d, minutes=m) for d in (0, 40, 75) for m in (0, 1, 2)]
    engine.apply(IndexBatch(sessions=[_session(f"m{i}", started_at=at) for i, at in enumerate(times)],
                            docs=[_turn(f"m{i}", 1, "限定版の予約", at) for i, at in enumerate(times)]))
    seen, cursor = [], None
    while True:
        page = engine.search("限定版 予約", limit=2, cursor=cursor)
        seen += [h.created_at for h in page.hits]
        if page.cursor is None:
            break
        cursor = page.cursor
    assert seen == sorted(times, reverse=True)
    assert [h.created_at for h in engine.search("限定版", limit=4).hits] == sorted(times, reverse=True)[:4]
