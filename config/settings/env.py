"""One typed helper for reading settings from the environment.

Every setting Outpost reads from the environment goes through :func:`env`, so a
missing or malformed value fails at start-up with ``ImproperlyConfigured``
naming the variable, instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar, overload

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")

_MISSING: Any = object()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _to_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"expected one of {sorted(_TRUE | _FALSE)}")


def _to_list(raw: str) -> list[str]:
    return [item.strip() for item in raw.split(",") if item.strip()]


_CASTS: dict[Any, Callable[[str], Any]] = {
    bool: _to_bool,
    int: int,
    float: float,
    str: str,
    list: _to_list,
}


@overload
def env(name: str, cast: type[T], default: T) -> T: ...
@overload
def env(name: str, cast: type[T]) -> T: ...
def env(name: str, cast: Any = str, default: Any = _MISSING) -> Any:
    """Read ``name`` from the environment and convert it with ``cast``.

    ``cast`` is one of ``str``, ``int``, ``float``, ``bool`` or ``list``
    (comma-separated). Without a ``default`` the variable is required.
    """
    raw = os.environ.get(name)
    if raw is None:
        if default is _MISSING:
            raise ImproperlyConfigured(f"Set the {name} environment variable.")
        return default
    try:
        return _CASTS[cast](raw)
    except (ValueError, KeyError) as exc:
        raise ImproperlyConfigured(f"The {name} environment variable is invalid: {exc}") from exc


def env_optional(name: str) -> str | None:
    """Read an optional string variable; an empty value counts as unset."""
    raw = os.environ.get(name, "").strip()
    return raw or None
