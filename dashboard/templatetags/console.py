"""Small display helpers. Every one returns plain text: Django's autoescaping stays in charge."""

from __future__ import annotations

from django import template

register = template.Library()


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
