"""Search hits as the console and the API show them: grouped by session (in the order their
newest hit came), each turn with a snippet around its first match.

A snippet is a list of ``(text, matched)`` pieces, never markup: the template escapes each piece
and wraps the matched ones in ``<mark>``, the API joins them into plain text — chat text is user
input, and no HTML is built here to be trusted later.
"""

from __future__ import annotations

from dataclasses import dataclass

from .engine import TURN, Hit
from .text import highlight_spans

SNIPPET_CHARS = 120  # around the first match; Japanese packs more into each character


@dataclass(frozen=True)
class TurnMatch:
    seq: int
    role: str
    created_at: object
    snippet: list[tuple[str, bool]]
    kind: str = TURN  # or engine.SUMMARY: a summary's text (seq = its through_seq)

    @property
    def snippet_text(self) -> str:
        return "".join(piece for piece, _ in self.snippet)


@dataclass(frozen=True)
class SessionMatches:
    session_id: str
    customer_id: str
    channel: str
    turns: list[TurnMatch]


def snippet(text: str, query: str, *, width: int = SNIPPET_CHARS) -> list[tuple[str, bool]]:
    """``width`` characters of ``text`` around its first match, cut with "…" where it was cut,
    the matches within marked."""
    spans = highlight_spans(text, query)
    if len(text) <= width:
        start, end = 0, len(text)
    else:
        first = spans[0][0] if spans else 0
        start = max(0, min(first - width // 3, len(text) - width))
        end = start + width
    pieces: list[tuple[str, bool]] = [("…", False)] if start > 0 else []
    at = start
    for a, b in spans:
        a, b = max(a, start), min(b, end)
        if a >= b:
            continue
        if a > at:
            pieces.append((text[at:a], False))
        pieces.append((text[a:b], True))
        at = b
    if at < end:
        pieces.append((text[at:end], False))
    if end < len(text):
        pieces.append(("…", False))
    return pieces


def group_by_session(hits: list[Hit], query: str) -> list[SessionMatches]:
    groups: dict[str, SessionMatches] = {}
    for hit in hits:
        group = groups.get(hit.session_id)
        if group is None:
            group = groups[hit.session_id] = SessionMatches(
                session_id=hit.session_id, customer_id=hit.customer_id, channel=hit.channel, turns=[])
        group.turns.append(TurnMatch(seq=hit.seq, role=hit.role, created_at=hit.created_at,
                                     snippet=snippet(hit.text, query), kind=hit.kind))
    return list(groups.values())
