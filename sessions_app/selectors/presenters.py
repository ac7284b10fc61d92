"""Plain-dict views of stored items: the API's JSON and the context cache's bytes use these."""

from __future__ import annotations

import json
from datetime import datetime

from ..models import SessionMeta, Summary, Turn
from .handoff import handoff_state


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def session_dict(meta: SessionMeta) -> dict:
    return {
        "session_id": meta.session_id,
        "customer_id": meta.customer_id,
        "channel": meta.channel,
        "locale": meta.locale,
        "status": meta.status,
        "tags": list(meta.tags or []),
        "started_at": _iso(meta.started_at),
        "last_message_at": _iso(meta.last_message_at),
        "closed_at": _iso(meta.closed_at),
        "turn_count": int(meta.turn_count or 0),
        "summary_through": int(meta.summary_through or 0),
        "handoff": handoff_state(meta),
        "home_region": meta.home_region,
    }


def turn_dict(turn: Turn) -> dict:
    return {
        "seq": int(turn.seq),
        "role": turn.role,
        "text": turn.text,
        "created_at": _iso(turn.created_at),
        "client_msg_id": turn.client_msg_id,
        "model": turn.model,
        "latency_ms": turn.latency_ms,
        "tokens_in": int(turn.tokens_in) if turn.tokens_in is not None else None,
        "tokens_out": int(turn.tokens_out) if turn.tokens_out is not None else None,
        # A staff reply's author (role "agent"); None for the bot's and the customer's turns.
        "author": turn.author,
    }


def summary_dict(summary: Summary | None) -> dict | None:
    if summary is None:
        return None
    return {
        "text": summary.text,
        "through_seq": int(summary.through_seq),
        "generator": summary.generator,
        "created_at": _iso(summary.created_at),
    }


def json_bytes(data: dict) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
