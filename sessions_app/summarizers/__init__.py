"""Summarizers: one interface, chosen by ``settings.SUMMARIZER``.

A summarizer turns a session's transcript into a short staff-facing summary in the session's
language. It does no I/O against our own stores (the summary service reads the turns and writes
the result), so every implementation can be tested on fixed transcripts.

- ``extractive`` (default): offline and deterministic (:mod:`.extractive`).
- ``bedrock``: AWS Bedrock's Converse API (:mod:`.bedrock`), for production.
- any dotted path to a class with the same interface (tests use this to plug in a summarizer
  that blocks on a Redis key, to kill a worker mid-summary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from ..exceptions import MangaAssistError


@dataclass(frozen=True)
class TranscriptTurn:
    seq: int
    role: str  # "user" (the customer), "assistant" (the bot), "system"
    text: str


@dataclass(frozen=True)
class Transcript:
    session_id: str
    locale: str  # "en" or "ja": the language the summary is written in
    turns: tuple[TranscriptTurn, ...]

    @property
    def through_seq(self) -> int:
        return self.turns[-1].seq if self.turns else 0


@dataclass(frozen=True)
class SummaryText:
    text: str
    generator: str  # e.g. "extractive-v1", "bedrock:<model id>"


class Summarizer(Protocol):
    def summarize(self, transcript: Transcript) -> SummaryText: ...


class SummarizerError(MangaAssistError):
    """The summarizer refused or failed for good (bad request, model error): retrying won't help."""

    code = "summarizer_error"
    http_status = 502


class SummarizerUnavailable(SummarizerError):
    """A transient failure (throttled, timed out, service unavailable): the task retries."""

    code = "summarizer_unavailable"
    http_status = 503


_BUILTIN = {
    "extractive": "sessions_app.summarizers.extractive.ExtractiveSummarizer",
    "bedrock": "sessions_app.summarizers.bedrock.BedrockSummarizer",
}


def summarizer_get(name: str | None = None) -> Summarizer:
    """The summarizer named by ``name`` or ``settings.SUMMARIZER`` (a built-in name or a dotted path)."""
    name = name or settings.SUMMARIZER
    return import_string(_BUILTIN.get(name, name))()


__all__ = [
    "Summarizer",
    "SummarizerError",
    "SummarizerUnavailable",
    "SummaryText",
    "Transcript",
    "TranscriptTurn",
    "summarizer_get",
]
