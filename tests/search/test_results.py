"""Snippets and grouping: pieces, not markup; cut around the first match; sessions in hit order."""

from __future__ import annotations

from datetime import datetime, timezone

from sessions_app.search.engine import Hit
from sessions_app.search.results import group_by_session, snippet

T0 = datetime(2026, 12, 1, tzinfo=timezone.utc)


def test_a_short_text_is_whole_with_its_matches_marked():
    assert snippet("ワンピース 105巻の<b>限定版</b>", "限定版") == [
        ("ワンピース 105巻の<b>", False), ("限定版", True), ("</b>", False)]  # the markup stays text


def test_a_long_text_is_cut_around_the_first_match_with_ellipses():
    text = "あ" * 300 + "表紙が破れていました" + "い" * 300
    pieces = snippet(text, "表紙", width=60)
    assert pieces[0] == ("…", False) and pieces[-1] == ("…", False)
    assert ("表紙", True) in pieces
    body = "".join(p for p, _ in pieces[1:-1])
    assert len(body) == 60 and "表紙が破れていました" in body


def test_no_match_in_the_text_gives_its_start():
    assert snippet("x" * 200, "zzz", width=10) == [("x" * 10, False), ("…", False)]


def test_hits_group_by_session_in_the_order_of_their_newest_hit():
    hits = [Hit(session_id=s, seq=q, role="user", text=f"在庫 {q}", created_at=T0, customer_id=f"c-{s}", channel="web")
            for s, q in [("b", 9), ("a", 7), ("b", 3), ("a", 1)]]
    groups = group_by_session(hits, "在庫")
    assert [(g.session_id, [t.seq for t in g.turns]) for g in groups] == [("b", [9, 3]), ("a", [7, 1])]
    assert groups[0].turns[0].snippet_text == "在庫 9" and groups[0].customer_id == "c-b"
