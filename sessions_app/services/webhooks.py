"""Delivering staff replies to the bot runtime through its webhook (BOT_WEBHOOK_URL)."""

from __future__ import annotations


def webhook_delivery_request(*, session_id: str, seq: int) -> None:
    """Enqueue the delivery of staff reply ``seq`` of ``session_id`` (never raises)."""
