"""Numbers as people read them, for every page and the static report (one place): whole counts
with thousands separators, shares as percentages, statistics to 3 significant digits, p-values
with a floor. Pages put the full value in a title= beside the short one.

    {% load readable_numbers %}
    <td class="num" title="{{ s.share }}">{{ s.share|percent }}</td>
"""
from __future__ import annotations

import math
from typing import Any

from django import template

register = template.Library()

MISSING = "n/a"


def _number(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@register.filter
def count(value: Any) -> str:
    """A count: 52 -> '52', 52.0 -> '52', 1234 -> '1,234'; a weighted count keeps one decimal
    (12.5), or two significant digits under 1 (0.33)."""
    number = _number(value)
    if number is None:
        return MISSING
    if abs(number - round(number)) < 1e-9:
        return f"{round(number):,}"
    if abs(number) < 1:
        return significant(number, 2)
    return f"{number:,.1f}"


@register.filter
def percent(value: Any) -> str:
    """A share (0..1) as a percentage with 2-3 significant digits: 0.4567 -> '46%', 0.034 -> '3.4%',
    0.0012 -> '0.12%', 0 -> '0%', 1 -> '100%'."""
    number = _number(value)
    if number is None:
        return MISSING
    pct = number * 100
    if pct == 0:
        return "0%"
    if abs(pct) >= 10:
        return f"{pct:.0f}%"
    if abs(pct) >= 1:
        return f"{pct:.1f}%"
    return f"{significant(pct, 2)}%"


@register.filter
def points(value: Any) -> str:
    """A difference of two shares in percentage points, signed: 0.032 -> '+3.2 pp', -0.25 -> '-25 pp'."""
    number = _number(value)
    if number is None:
        return MISSING
    text = percent(abs(number)).removesuffix("%")
    return "0 pp" if text == "0" else f"{'+' if number > 0 else '-'}{text} pp"


@register.filter
def significant(value: Any, digits: int = 3) -> str:
    """A statistic to `digits` significant digits, never in exponent form: 0.62345 -> '0.623',
    -0.051234 -> '-0.0512', 12.345 -> '12.3', 1234.5 -> '1,235'."""
    number = _number(value)
    if number is None:
        return MISSING
    digits = int(digits)
    if number == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(number))))
    text = f"{number:,.{min(decimals, 8)}f}"
    return "0" if float(text.replace(",", "")) == 0 else text


@register.filter
def pvalue(value: Any) -> str:
    """A p-value: two significant digits, '< 0.001' below that."""
    number = _number(value)
    if number is None:
        return MISSING
    if number < 0.001:
        return "< 0.001"
    return significant(number, 2)


@register.filter
def readable(value: Any) -> str:
    """Any value of a run's counts: an int as a count, a float to 3 significant digits, the rest as is."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "" if value is None else str(value)
    return count(value) if isinstance(value, int) else significant(value)


@register.filter
def full(value: Any) -> str:
    """The full value for a title= (what a short form rounds): repr of a float, else the value."""
    number = _number(value)
    if number is None:
        return MISSING if value is None else str(value)
    return repr(number) if isinstance(value, float) else str(value)
