"""Character bigrams (``sessions_app/search/text.py``) against SudachiPy's morphemes, measured
on the search corpus (``tests/search/corpus.py``): recall and precision of each, side by side,
with one matcher (every clause's terms adjacent, in order) so only the analysis differs.

    .venv/bin/pip install --target .local/sudachi sudachipy sudachidict_core   # ~200 MB, not a dependency
    PYTHONPATH=.local/sudachi .venv/bin/python -m bench.search_analysis

SudachiPy is not a requirement of the product: this script is how the choice was made and how
to check it again (docs/architecture.md §Search gives the figures).
"""

from __future__ import annotations

import sys
import time
import unicodedata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sessions_app.search import text  # noqa: E402
from tests.search.corpus import DOCS, QUERIES  # noqa: E402


def _contains(tokens: list[str], phrase: tuple[str, ...]) -> bool:
    n = len(phrase)
    return any(tuple(tokens[i:i + n]) == phrase for i in range(len(tokens) - n + 1))


def _bigram_match(doc: str, query: str) -> bool:
    terms = text.index_terms(doc)
    fields = {"terms": terms.terms.split(), "chars": terms.chars.split()}
    clauses = text.query_clauses(query)
    return bool(clauses) and all(_contains(fields[c.field], c.phrase) for c in clauses)


class Sudachi:
    """Sudachi on the width- and case-folded text (before kana folding, which would confuse it:
    の → ノ), each morpheme's normalised form then folded to katakana as ours are."""

    def __init__(self, mode: str) -> None:
        from sudachipy import Dictionary, SplitMode

        self.tokenizer = Dictionary(dict="core").tokenizer()
        self.mode = getattr(SplitMode, mode)

    def tokens(self, value: str) -> list[str]:
        folded = unicodedata.normalize("NFKC", value).casefold()
        out: list[str] = []
        current, chars = None, []
        for ch in folded + " ":
            script = text._script(ch)
            if script != current and chars:
                run = "".join(chars)
                if current == text.CJK:
                    out += [m.normalized_form().translate(text._KANA_FOLD)
                            for m in self.tokenizer.tokenize(run, self.mode) if m.surface().strip()]
                elif current == text.LATIN:
                    out.append(text._stem(run))
                else:
                    out.append(run)
                chars = []
            current = script
            if script is not None:
                chars.append(ch)
        return out

    def match(self, doc: str, query: str) -> bool:
        # As ours: each space-separated part of the query must occur, its morphemes adjacent.
        phrases = [tuple(self.tokens(part)) for part in query.split()]
        doc_tokens = self.tokens(doc)
        return bool(phrases) and all(p and _contains(doc_tokens, p) for p in phrases)

    def index(self, doc: str) -> None:
        self.tokens(doc)


def measure(match) -> tuple[float, float, list[str]]:
    expected_total = found_total = right_total = 0
    wrong = []
    for query, expected in QUERIES:
        found = {key for key, doc in DOCS.items() if match(doc, query)}
        expected_total += len(expected)
        found_total += len(found)
        right_total += len(found & expected)
        if found != expected:
            wrong.append(f"{query}: missed {sorted(expected - found)}, extra {sorted(found - expected)}")
    return right_total / expected_total, right_total / max(found_total, 1), wrong


def index_rate(analyse, rounds: int = 50) -> float:
    """Texts analysed per second (the corpus, ``rounds`` times): the indexer's CPU cost."""
    docs = list(DOCS.values())
    started = time.perf_counter()
    for _ in range(rounds):
        for doc in docs:
            analyse(doc)
    return rounds * len(docs) / (time.perf_counter() - started)


def main() -> None:
    rows = [("bigrams (text.py)", _bigram_match, text.index_terms)]
    try:
        for mode in ("A", "B", "C"):
            sudachi = Sudachi(mode)
            rows.append((f"SudachiPy core, mode {mode}", sudachi.match, sudachi.index))
    except ImportError:
        print("SudachiPy is not installed: see this module's docstring", file=sys.stderr)
    print(f"corpus: {len(DOCS)} turns, {len(QUERIES)} queries")
    for name, match, analyse in rows:
        recall, precision, wrong = measure(match)
        print(f"{name:28} recall {recall:.3f}  precision {precision:.3f}  ({len(wrong)} queries wrong)"
              f"  {index_rate(analyse):,.0f} texts/s analysed")
        for line in wrong:
            print(f"    {line}")


if __name__ == "__main__":
    main()
