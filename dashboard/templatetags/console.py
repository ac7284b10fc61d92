"""Small display helpers. Every one returns plain text (Django's autoescaping stays in charge),
except ``visible_controls``, which escapes its input itself and returns markup."""

from __future__ import annotations

import re
import unicodedata

from django import template
from django.utils.html import conditional_escape, escape
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# Characters that change or hide what staff read without being seen themselves: C0/C1 controls
# (but tab, newline, carriage return), the bidi embeddings, overrides, isolates and marks, and the
# invisible zero-width space / word joiner / BOM. Zero-width (non-)joiners stay: emoji sequences and
# several scripts need them, and they cannot reorder text.
_HIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f"
                     "\u202a-\u202e\u2060\u2066-\u2069\ufeff]")


def _marker(match: re.Match) -> str:
    char = match.group()
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "control character")
    return f'<span class="ctl" title="{code} {escape(name)}">{code}</span>'


@register.filter
def visible_controls(value) -> SafeString:
    """``value`` escaped, with every control or bidi character shown as a ``U+XXXX`` marker.

    Use it wherever customer-supplied text (chat turns, summaries, tags, model names) is rendered
    in HTML. It escapes even under ``{% autoescape off %}``, since its result is marked safe; text
    already marked safe is not escaped twice."""
    if value is None:
        return mark_safe("")
    return mark_safe(_HIDDEN.sub(_marker, str(conditional_escape(value))))


@register.filter
def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


@register.filter
def ms(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value == float("inf"):
        return "> 5 s"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


@register.filter
def seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} s"


@register.filter
def or_na(value) -> str:
    return "n/a" if value is None else value


@register.inclusion_tag("dashboard/partials/provenance.html")
def provenance(read) -> dict:
    return {"read": read}


# --- times (sessions_app/timezones.py: one format for the console and the admin) ---------------

@register.filter
def when(value) -> str:
    """A datetime in the request's time zone: ``2026-12-07 15:04:05 JST`` ("" for None)."""
    from sessions_app.timezones import when_format

    return when_format(value)


@register.simple_tag
def time_zone_choices() -> tuple[str, ...]:
    from dashboard.timezone import COMMON_ZONES

    return COMMON_ZONES


# --- usage (sessions_app/usage.py) ---------------------------------------------------------------

@register.filter
def usage(meta):
    """The usage aggregates META records (no read: the session list's columns)."""
    from sessions_app.usage import meta_aggregates

    return meta_aggregates(meta)


@register.filter
def usd(value) -> str:
    """A Decimal cost as "$0.0123"; None as "no price"."""
    from sessions_app.usage import cost_format

    return cost_format(value)


@register.filter
def duration(value: float | None) -> str:
    """Seconds as "42 s", "3 min 05 s", "2 h 04 min"; "n/a" for None."""
    if value is None:
        return "n/a"
    total = int(round(value))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


@register.filter
def int_sep(value) -> str:
    """A whole number with thin grouping (12,345); "n/a" for None."""
    return "n/a" if value is None else f"{int(value):,}"


@register.simple_tag
def model_usage_reading():
    """The overview's by-model readings (selectors.overview.model_usage_panel), for
    partials/model_usage_panel.html, which any page can include as it is."""
    from sessions_app.selectors.overview import model_usage_panel

    return model_usage_panel()


@register.filter
def controls_as_codes(value) -> str:
    """Plain text for an attribute value: each control or bidi character as ``U+XXXX`` (the
    template still escapes the result)."""
    return "" if value is None else _HIDDEN.sub(lambda m: f"U+{ord(m.group()):04X}", str(value))
