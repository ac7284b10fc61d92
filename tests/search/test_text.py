"""The analysis both engines share: folding, terms, query clauses, highlight spans."""

from __future__ import annotations

import pytest

from sessions_app.search.text import Clause, highlight_spans, index_terms, normalize, query_clauses


@pytest.mark.parametrize("raw, folded", [
    ("ＯＮＥ ＰＩＥＣＥ", "one piece"),  # full-width ASCII
    ("ｶﾀｶﾅ", "カタカナ"),  # half-width katakana
    ("ﾜﾝﾋﾟｰｽ", "ワンピース"),  # a half-width semi-voiced mark composes
    ("わんぴーす", "ワンピース"),  # hiragana to katakana
    ("１０５巻", "105巻"),
    ("Straße", "strasse"),  # case folding, not lower()
])
def test_normalize_folds_width_kana_and_case(raw, folded):
    assert normalize(raw) == folded


def test_terms_cut_scripts_apart_numbers_stand_alone_and_cjk_is_bigrams_plus_characters():
    terms = index_terms("ワンピース105巻の限定版、vol.105 in stocks😊")
    assert terms.terms.split() == ["ワン", "ンピ", "ピー", "ース", "105", "巻ノ", "ノ限", "限定", "定版",
                                   "vol", "105", "in", "stock"]
    assert terms.chars.split() == list("ワンピース巻ノ限定版")


def test_a_lone_cjk_character_is_a_term_too():
    assert index_terms("1巻").terms.split() == ["1", "巻"]


def test_query_clauses_phrase_of_bigrams_single_characters_stems_and_no_repeats():
    assert query_clauses("限定版 巻 Stocks 105 105") == [
        Clause("terms", ("限定", "定版")), Clause("chars", ("巻",)), Clause("terms", ("stock",)),
        Clause("terms", ("105",))]
    assert query_clauses("  、。!? 😊 ") == []  # nothing searchable


def test_highlight_spans_point_at_the_original_characters():
    text = "ﾜﾝﾋﾟｰｽ 105巻の限定版 is in STOCK, 1050 stocks"
    spans = highlight_spans(text, "わんぴーす 限定版 105 stock")
    assert [text[a:b] for a, b in spans] == ["ﾜﾝﾋﾟｰｽ", "105", "限定版", "STOCK", "stocks"]  # not 1050
