"""Small template filters for the portal."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def cents(value: int | None) -> str:
    """``2900`` → ``29.00``."""
    return f"{(value or 0) / 100:,.2f}"


@register.filter
def detail(value: Any) -> str:
    """An audit detail value: strings as they are, anything else as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
