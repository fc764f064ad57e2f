"""Numeric app settings, read one way for every settings group (doors.py, throughput.py): unset or blank → the
default; otherwise the value must parse and be at least ``minimum``, or a ValueError names the setting."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TypeVar

N = TypeVar("N", int, float)


def _read(env: Mapping[str, str], name: str, default: N, minimum: N, parse: Callable[[str], N], kind: str) -> N:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ValueError(f"{name} must be {kind}, got {raw!r}") from None
    # float() reads "nan" and "inf": NaN passes every comparison below, and neither is a usable limit or window.
    if not math.isfinite(value):
        raise ValueError(f"{name} must be {kind}, got {raw!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum:g}, got {raw}")
    return value


def integer_setting(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    """An integer setting ("1.5" or "1e3" is refused, not truncated)."""
    return _read(env, name, default, minimum, int, "an integer")


def number_setting(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    """A (finite) number setting."""
    return _read(env, name, default, minimum, float, "a number")
