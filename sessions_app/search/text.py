"""Text analysis for transcript search, the same for indexing and for queries, so that both
engines (SQLite FTS5, PostgreSQL) see identical terms and answer with the same semantics.

Why by hand: neither engine's tokenizer serves this shop. FTS5's unicode61 and PostgreSQL's
parsers split on spaces, and Japanese has none (Langfuse's full-text search finds nothing in
Japanese for exactly this reason); a morphological analyser (SudachiPy) is the other candidate,
to be chosen against this module by recall/precision on ``tests/search/corpus.py``.

Normalisation (``normalize``): NFKC — full-width ASCII and half-width katakana fold to their
usual forms (ＯＮＥ ＰＩＥＣＥ = ONE PIECE, ｶﾀｶﾅ = カタカナ) — then case folding, then hiragana
to katakana (わんぴーす = ワンピース).

Terms: the text is cut into runs of one script.
- Latin letters: a word, stemmed with Snowball's English stemmer (stocks = stock).
- Digits: a number of its own, also when glued to letters or kanji ("105巻" and "vol.105" both
  hold 105).
- Kanji and kana: overlapping bigrams in order (限定版 → 限定 定版), and every character on its
  own in a second field, so a one-character query (巻, 版) finds it wherever it stands. A query of
  two or more characters is the phrase of its bigrams: adjacent, in order — 限定版 does not match a
  turn that only has 限定 and 定版 apart.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import snowballstemmer

# Hiragana (ぁ U+3041 … ゖ U+3096, ゝゞ) to katakana: the same syllables, 0x60 apart.
_KANA_FOLD = {code: code + 0x60 for code in [*range(0x3041, 0x3097), 0x309D, 0x309E]}

LATIN, DIGIT, CJK = "latin", "digit", "cjk"
_VOICING = {"\uff9e", "\uff9f", "\u3099", "\u309a"}  # half-width and combining (semi-)voiced sound marks


@lru_cache(maxsize=1)
def _stemmer():
    return snowballstemmer.stemmer("english")


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold().translate(_KANA_FOLD)


def _script(ch: str) -> str | None:
    if ch.isdigit() and ch.isascii():
        return DIGIT
    if ch.isalpha():
        code = ord(ch)
        # Kana, the long-vowel mark, CJK ideographs (with extension A, compatibility ones).
        if 0x3040 <= code <= 0x30FF or 0x3400 <= code <= 0x9FFF or 0xF900 <= code <= 0xFAFF or ch == "々":
            return CJK
        return LATIN
    if ch == "ー":  # a letter for our purposes (ラーメン), though Unicode calls it Lm in some builds
        return CJK
    return None  # spaces, punctuation, symbols, emoji: separators


@dataclass(frozen=True)
class Run:
    script: str
    text: str  # normalised


def runs(text: str) -> list[Run]:
    """The normalised text's runs of one script, in order (separators dropped)."""
    out: list[Run] = []
    current, chars = None, []
    for ch in normalize(text):
        script = _script(ch)
        if script != current:
            if current is not None and chars:
                out.append(Run(current, "".join(chars)))
            current, chars = script, []
        if script is not None:
            chars.append(ch)
    if current is not None and chars:
        out.append(Run(current, "".join(chars)))
    return out


def _bigrams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i:i + 2] for i in range(len(run) - 1)]


def _stem(word: str) -> str:
    return _stemmer().stemWord(word)


@dataclass(frozen=True)
class Terms:
    """What the engines store for one text: ``terms`` (words, numbers, CJK bigrams, in text
    order) and ``chars`` (every CJK character), each a space-separated string."""

    terms: str
    chars: str


def index_terms(text: str) -> Terms:
    terms: list[str] = []
    chars: list[str] = []
    for run in runs(text):
        if run.script == CJK:
            terms.extend(_bigrams(run.text))
            chars.extend(run.text)
        elif run.script == LATIN:
            terms.append(_stem(run.text))
        else:
            terms.append(run.text)
    return Terms(terms=" ".join(terms), chars=" ".join(chars))


@dataclass(frozen=True)
class Clause:
    """One part of a query; every clause must match (AND). ``field`` is "terms" or "chars";
    ``phrase``: the terms, adjacent and in this order."""

    field: str
    phrase: tuple[str, ...]


def query_clauses(query: str) -> list[Clause]:
    """The query's clauses (empty: nothing to search for — the caller says so)."""
    clauses: list[Clause] = []
    for run in runs(query):
        if run.script == CJK:
            if len(run.text) == 1:
                clauses.append(Clause("chars", (run.text,)))
            else:
                clauses.append(Clause("terms", tuple(_bigrams(run.text))))
        elif run.script == LATIN:
            clauses.append(Clause("terms", (_stem(run.text),)))
        else:
            clauses.append(Clause("terms", (run.text,)))
    # The same clause twice ("105 105") asks nothing more.
    return list(dict.fromkeys(clauses))


def highlight_spans(text: str, query: str) -> list[tuple[int, int]]:
    """Where the query's clauses occur in the original ``text`` (character offsets, merged), for
    the snippet: a clause matches a normalised run — Latin words by their stem — mapped back to
    the original characters. NFKC can change a string's length (ｶﾞ → ガ), so offsets are found
    on a per-character normalisation that keeps the mapping."""
    clauses = query_clauses(query)
    if not clauses:
        return []
    # Per original character (with the voicing or combining marks that follow it, which NFKC
    # composes into it: ﾋﾟ → ピ): its normalised form, so each folded character maps back.
    pieces = []
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and (text[j] in _VOICING or unicodedata.combining(text[j])):
            j += 1
        pieces.append((i, j, normalize(text[i:j])))
        i = j
    flat, owner, owner_end = [], [], []
    for start, end, piece in pieces:
        for ch in piece:
            flat.append(ch)
            owner.append(start)
            owner_end.append(end)
    norm = "".join(flat)
    spans: list[tuple[int, int]] = []
    norm_runs = list(_runs_with_offsets(norm))
    for clause in clauses:
        if clause.field == "chars" or _script(clause.phrase[0][0]) == CJK:
            needle = clause.phrase[0] if clause.field == "chars" else _join_bigrams(clause.phrase)
            for run_start, script, run_text in norm_runs:
                if script != CJK:
                    continue
                at = run_text.find(needle)
                while at >= 0:
                    spans.append((owner[run_start + at], owner_end[run_start + at + len(needle) - 1]))
                    at = run_text.find(needle, at + len(needle))
        else:  # a word (by its stem) or a number: whole runs only, as the index has them
            for run_start, script, run_text in norm_runs:
                if script == CJK or (_stem(run_text) if script == LATIN else run_text) != clause.phrase[0]:
                    continue
                spans.append((owner[run_start], owner_end[run_start + len(run_text) - 1]))
    return _merge(spans)


def _join_bigrams(phrase: tuple[str, ...]) -> str:
    return phrase[0] + "".join(b[1:] for b in phrase[1:])


def _runs_with_offsets(norm: str):
    """(offset, script, text) of each run of the already normalised ``norm``."""
    start, current = 0, None
    for i, ch in enumerate(norm + " "):
        script = _script(ch) if i < len(norm) else None
        if script != current:
            if current is not None:
                yield start, current, norm[start:i]
            start, current = i, script


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged
