"""The append transaction's share of per-session usage (sessions_app/usage.py): the META update
actions that record one more turn.

``turn_write`` reads META strongly consistently and conditions its update on the turn count it
read, so the record computed here from that META is the one the turn count belongs to; a lost
race re-reads META and computes again. The whole record is SET (no per-field ADD): one action,
and the record's histogram and per-model lists stay consistent with each other.
"""

from __future__ import annotations

from ..models import SessionMeta, Turn
from ..usage import usage_add, usage_dump, usage_parse


def usage_actions(meta, turn: Turn) -> list:
    """The update actions that add ``turn`` to ``meta``'s usage record (``meta``: the META the
    transaction is conditioned on). A record that cannot be read is started over from this turn
    (it then says it covers turns from this one on: partial, never wrong)."""
    usage = usage_add(usage_parse(getattr(meta, "usage", None)), seq=int(turn.seq), role=turn.role, model=turn.model,
                      latency_ms=turn.latency_ms, tokens_in=turn.tokens_in, tokens_out=turn.tokens_out,
                      at=turn.created_at)
    return [SessionMeta.usage.set(usage_dump(usage))]
