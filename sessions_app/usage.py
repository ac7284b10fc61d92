"""Per-session usage (turns, tokens, bot latency, cost), computed without any I/O.

The append transaction keeps a small record of it on META (``SessionMeta.usage``, written by
``services.usage.usage_actions``) so that the session list shows aggregates without reading a
single turn. ``turn_write`` reads META strongly consistently and its update is conditioned on
``turn_count == expected``: appends to one session are serialised, so the new record is computed
here from the one that was read and SET whole — never a lost update.

The record is compact JSON in one string attribute (META is read on every append; it is never
projected into an index, so it costs no index writes)::

    {"v": 1,
     "from": 1,                 # the first turn it covers (1: recorded from the session's start)
     "first": "2026-12-07T15:04:05.123456+0000",   # that turn's time
     "m": {"<model>": [turns, tokens_in, tokens_out, latency_count, latency_ms_sum]},
     "h": [bot latency histogram: one count per LATENCY_BOUNDS_MS bucket, plus > the last]}

A turn counts under its ``model``; a turn without one that still reports tokens or latency under
``NO_MODEL``; a turn with none of them (a customer's message, a staff reply) only in the turn
count. At most ``MAX_MODELS`` names are kept per session, the rest add up under ``OTHER_MODEL``
(which has no price). Bot latency is the ``latency_ms`` of ``assistant`` turns: its mean is exact
(sum / count), its p95 is interpolated linearly inside the histogram's fixed buckets (as
Prometheus' ``histogram_quantile`` does), so it is an estimate within the bucket's bounds; a p95
beyond the last bound is reported as "above" it.

Sessions started before this record existed have none (unknown), or — when their first append
since then made one — a record from a later turn (``from`` > 1): partial, and said so.

Cost: ``MODEL_PRICES`` (USD per 1M input / output tokens, ``Decimal``); a model without a price
has none — shown as "no price", never as 0.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable

from django.conf import settings

VERSION = 1
# Upper bounds (ms) of the bot latency buckets; one more bucket counts everything above the last.
LATENCY_BOUNDS_MS = (250, 500, 750, 1000, 1500, 2000, 3000, 5000, 8000, 13000, 20000, 30000)
MAX_MODELS = 8
OTHER_MODEL = "(other models)"
NO_MODEL = "(no model)"
BOT_ROLE = "assistant"
PER_TOKENS = Decimal(1_000_000)
# The Prometheus label of a model outside the price table (the label set stays bounded).
OTHER_LABEL = "other"
_TS = "%Y-%m-%dT%H:%M:%S.%f%z"

# index of each figure in a model's list
TURNS, TOKENS_IN, TOKENS_OUT, LATENCY_COUNT, LATENCY_SUM = range(5)


# --- the price table ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Price:
    input_per_m: Decimal
    output_per_m: Decimal

    def cost(self, tokens_in: int, tokens_out: int) -> Decimal:
        return (Decimal(tokens_in) * self.input_per_m + Decimal(tokens_out) * self.output_per_m) / PER_TOKENS


def price_table() -> dict[str, Price]:
    """``MODEL_PRICES`` as Decimals (the setting is validated when settings load)."""
    return {model: Price(Decimal(str(p["input"])), Decimal(str(p["output"])))
            for model, p in settings.MODEL_PRICES.items()}


def price_for(model: str) -> Price | None:
    p = settings.MODEL_PRICES.get(model)
    return None if p is None else Price(Decimal(str(p["input"])), Decimal(str(p["output"])))


def model_label(model: str | None) -> str:
    """The ``model`` label of the per-model metrics: a priced model's name, else ``other``."""
    return model if model and model in settings.MODEL_PRICES else OTHER_LABEL


# --- the record -------------------------------------------------------------------------------------

def usage_parse(raw: str | None) -> dict | None:
    """The stored record, or None when absent or unreadable (then: unknown)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("v") != VERSION or not isinstance(data.get("m"), dict):
        return None
    h = data.get("h")
    if not isinstance(h, list) or len(h) != len(LATENCY_BOUNDS_MS) + 1:
        return None
    return data


def usage_dump(usage: dict) -> str:
    return json.dumps(usage, separators=(",", ":"), ensure_ascii=False, sort_keys=True)


def _bucket(latency_ms: float) -> int:
    for i, bound in enumerate(LATENCY_BOUNDS_MS):
        if latency_ms <= bound:
            return i
    return len(LATENCY_BOUNDS_MS)


def usage_add(usage: dict | None, *, seq: int, role: str, model: str | None, latency_ms: float | None,
              tokens_in: int | None, tokens_out: int | None, at: datetime) -> dict:
    """A new record: ``usage`` (None: none yet) plus turn ``seq``. ``usage`` is not changed."""
    if usage is None:
        usage = {"v": VERSION, "from": int(seq), "first": at.astimezone(timezone.utc).strftime(_TS), "m": {},
                 "h": [0] * (len(LATENCY_BOUNDS_MS) + 1)}
    new = {**usage, "m": {k: list(v) for k, v in usage["m"].items()}, "h": list(usage["h"])}
    bot_latency = latency_ms if role == BOT_ROLE and latency_ms is not None else None
    if model is None and tokens_in is None and tokens_out is None and bot_latency is None:
        return new
    key = model if model is not None else NO_MODEL
    if key not in new["m"] and len(new["m"]) >= MAX_MODELS:
        key = OTHER_MODEL
    row = new["m"].setdefault(key, [0, 0, 0, 0, 0])
    row[TURNS] += 1
    row[TOKENS_IN] += int(tokens_in or 0)
    row[TOKENS_OUT] += int(tokens_out or 0)
    if bot_latency is not None:
        row[LATENCY_COUNT] += 1
        # Rounded: float sums would otherwise grow long tails of digits (and DAX rejects denormals).
        row[LATENCY_SUM] = round(row[LATENCY_SUM] + float(bot_latency), 3)
        new["h"][_bucket(float(bot_latency))] += 1
    return new


def usage_from_turns(turns: Iterable[Any]) -> dict | None:
    """The record of ``turns`` (oldest first; models or raw item views), e.g. for a session
    loaded in bulk or one that predates the record. None without turns."""
    usage = None
    for t in turns:
        usage = usage_add(usage, seq=int(t.seq), role=t.role, model=t.model, latency_ms=t.latency_ms,
                          tokens_in=t.tokens_in, tokens_out=t.tokens_out, at=t.created_at)
    return usage


def turn_usage_record(*, role: str, model: str | None, latency_ms: float | None, tokens_in: int | None,
                      tokens_out: int | None) -> None:
    """Count a written turn's tokens and bot latency in the per-model Prometheus metrics (call
    once per turn actually stored, after its transaction committed)."""
    from .observability import metrics  # here: settings import this module (prices_parse)

    if model is None and tokens_in is None and tokens_out is None and latency_ms is None:
        return
    label = model_label(model)
    if tokens_in:
        metrics.count(metrics.MODEL_TOKENS, label, "in", amount=float(tokens_in))
    if tokens_out:
        metrics.count(metrics.MODEL_TOKENS, label, "out", amount=float(tokens_out))
    if role == BOT_ROLE and latency_ms is not None:
        metrics.observe_seconds(metrics.MODEL_LATENCY_SECONDS, float(latency_ms) / 1000, label)


# --- aggregates -------------------------------------------------------------------------------------

def quantile_ms(counts: list[float], q: float, bounds: tuple[float, ...] = LATENCY_BOUNDS_MS) -> tuple[float | None, bool]:
    """The q-quantile of per-bucket (not cumulative) ``counts`` with upper ``bounds`` and one
    overflow bucket: interpolated linearly inside its bucket (the first starts at 0). Returns
    (value, above): ``above`` True when the quantile lies beyond the last bound (value is that
    bound). (None, False) without observations."""
    total = sum(counts)
    if total <= 0:
        return None, False
    rank = q * total
    seen, lower = 0.0, 0.0
    for i, n in enumerate(counts):
        if n and seen + n >= rank:
            if i >= len(bounds):
                return float(bounds[-1]), True
            upper = float(bounds[i])
            return lower + (upper - lower) * (rank - seen) / n, False
        seen += n
        lower = float(bounds[i]) if i < len(bounds) else lower
    return float(bounds[-1]), True


@dataclass(frozen=True)
class ModelUsage:
    model: str
    turns: int
    tokens_in: int
    tokens_out: int
    latency_count: int
    latency_mean_ms: float | None
    price: Price | None
    cost: Decimal | None  # None: no price for this model

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


@dataclass(frozen=True)
class SessionAggregates:
    """What the console shows. ``state``: ``recorded`` (the record covers every turn),
    ``computed`` (no complete record: computed from the turns just read), ``partial`` (the record
    covers turns ``from_seq``..``turns`` only) or ``unknown`` (nothing recorded)."""

    state: str
    turns: int
    from_seq: int | None = None
    duration_seconds: float | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_count: int = 0
    latency_mean_ms: float | None = None
    latency_p95_ms: float | None = None
    latency_p95_above: bool = False  # p95 beyond the last bucket bound: "> p95"
    cost: Decimal | None = None  # the priced models' cost; None: no priced model used tokens
    unpriced: list[str] = field(default_factory=list)  # models with tokens but no price
    models: list[ModelUsage] = field(default_factory=list)

    @property
    def known(self) -> bool:
        return self.state != "unknown"

    @property
    def complete(self) -> bool:
        return self.state in ("recorded", "computed")

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out

    @property
    def cost_text(self) -> str:
        """"$0.0123", "$0.0123 + no price for x", "no price"."""
        if self.cost is None:
            return "no price" if self.unpriced else "$0"
        text = cost_format(self.cost)
        return f"{text} + no price for {', '.join(self.unpriced)}" if self.unpriced else text


def cost_format(cost: Decimal | None) -> str:
    if cost is None:
        return "no price"
    if cost == 0:
        return "$0"
    places = Decimal("0.0001") if abs(cost) >= Decimal("0.01") else Decimal("0.000001")
    return f"${cost.quantize(places, rounding=ROUND_HALF_UP)}"


def _parse_ts(text: object) -> datetime | None:
    try:
        return datetime.strptime(str(text), _TS)
    except ValueError:
        return None


def aggregates_from_usage(usage: dict | None, *, turn_count: int, last_message_at: datetime | None,
                          state: str | None = None) -> SessionAggregates:
    """The aggregates of a record (see the module docstring); ``state`` overrides what the
    record's coverage says (``computed``)."""
    turn_count = int(turn_count or 0)
    if usage is None:
        return SessionAggregates(state="unknown" if turn_count else "recorded", turns=turn_count)
    from_seq = int(usage.get("from") or 1)
    first = _parse_ts(usage.get("first"))
    duration = None
    if first is not None and last_message_at is not None:
        duration = max(0.0, (last_message_at - first).total_seconds())
    models: list[ModelUsage] = []
    cost: Decimal | None = None
    unpriced: list[str] = []
    lat_count, lat_sum = 0, 0.0
    for name, row in sorted(usage["m"].items()):
        try:
            turns, t_in, t_out, l_count, l_sum = (int(row[0]), int(row[1]), int(row[2]), int(row[3]), float(row[4]))
        except (TypeError, ValueError, IndexError):
            continue
        price = None if name in (OTHER_MODEL, NO_MODEL) else price_for(name)
        m_cost = price.cost(t_in, t_out) if price is not None else None
        if m_cost is not None:
            cost = (cost or Decimal(0)) + m_cost
        elif t_in or t_out:
            unpriced.append(name)
        lat_count += l_count
        lat_sum += l_sum
        models.append(ModelUsage(model=name, turns=turns, tokens_in=t_in, tokens_out=t_out, latency_count=l_count,
                                 latency_mean_ms=l_sum / l_count if l_count else None, price=price, cost=m_cost))
    p95, above = quantile_ms([float(x) for x in usage["h"]], 0.95)
    if state is None:
        state = "recorded" if from_seq <= 1 else "partial"
    return SessionAggregates(
        state=state, turns=turn_count, from_seq=from_seq, duration_seconds=duration,
        tokens_in=sum(m.tokens_in for m in models), tokens_out=sum(m.tokens_out for m in models),
        latency_count=lat_count, latency_mean_ms=lat_sum / lat_count if lat_count else None,
        latency_p95_ms=p95, latency_p95_above=above, cost=cost, unpriced=unpriced, models=models,
    )


def meta_aggregates(meta: Any) -> SessionAggregates:
    """The aggregates recorded on a META (a model or a raw item view)."""
    return aggregates_from_usage(usage_parse(getattr(meta, "usage", None)), turn_count=int(meta.turn_count or 0),
                                 last_message_at=meta.last_message_at)


# --- the MODEL_PRICES setting --------------------------------------------------------------------

def prices_parse(raw: str | dict) -> dict[str, dict[str, str]]:
    """``MODEL_PRICES`` JSON — ``{"model": {"input": 0.25, "output": 1.25}}``, USD per 1M tokens —
    (or that object) checked (ValueError saying what is wrong); values kept as decimal strings."""
    data = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(data, dict):
        raise ValueError("MODEL_PRICES must be a JSON object of model → {input, output}")
    table = {}
    for model, price in data.items():
        if not isinstance(model, str) or not model or len(model) > 100 or model in (OTHER_MODEL, NO_MODEL, OTHER_LABEL):
            raise ValueError(f"MODEL_PRICES: invalid model name {model!r}")
        if not isinstance(price, dict) or set(price) != {"input", "output"}:
            raise ValueError(f"MODEL_PRICES[{model!r}] must be {{\"input\": n, \"output\": n}} (USD per 1M tokens)")
        for side in ("input", "output"):
            value = price[side]
            try:
                d = Decimal(str(value)) if not isinstance(value, bool) else None
            except InvalidOperation:
                d = None
            if d is None or not d.is_finite() or d < 0 or (isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"MODEL_PRICES[{model!r}][{side!r}] must be a non-negative number")
        table[model] = {"input": str(Decimal(str(price["input"]))), "output": str(Decimal(str(price["output"])))}
    return table
