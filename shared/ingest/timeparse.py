"""ISO 8601 timestamps as integer ticks (100 ns since 0001-01-01), exact for the 7 fractional digits Azure sends.

Event Grid stamps ``eventTime`` with 7 fractional digits, IoT Hub's ``iothub-enqueuedtime`` with fewer, and the
registry sometimes with none and no zone (``0001-01-01T00:00:00``). String comparison of such values is wrong, and
``datetime.fromisoformat`` on 3.11 rejects 7 digits, so freshness compares these integers instead.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\s*(Z|z|[+-]\d{2}:?\d{2})?",
    re.ASCII,  # ISO 8601 digits are 0-9: Python's \d alone would also take e.g. fullwidth digits
)
_EPOCH = datetime(1, 1, 1, tzinfo=UTC)
TICKS_PER_SECOND = 10_000_000
# Fast path for the form Azure sends ("2026-11-23T09:00:00.1234567Z"): the whole-second part is parsed once and
# remembered; only the fraction is parsed per call. Anything else takes the general path below. Bounded cache.
_CANONICAL_SECOND = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")
_SECONDS: dict[str, int] = {}
_SECONDS_LIMIT = 8192
_SCALE: tuple[int, ...] = tuple(10 ** (7 - n) for n in range(8))  # a fraction of n digits, in ticks


def parse_ticks(text: str) -> int:
    """Ticks since 0001-01-01T00:00:00Z. A timestamp without zone is taken as UTC (IoT Hub's habit).

    Raises ValueError with the offending text when it is not an ISO 8601 date-time.
    """
    if text[-1:] == "Z":
        base = _SECONDS.get(text[:19])
        if base is not None:
            frac = text[20:-1]
            if len(text) == 20:
                return base
            if text[19] == "." and frac.isascii() and frac.isdigit():
                digits = len(frac)
                if digits <= 7:
                    return base + int(frac) * _SCALE[digits]
                if digits <= 9:
                    return base + int(frac[:7])
    ticks = _parse_general(text)
    head = text[:19]
    if len(text) >= 20 and text[-1] == "Z" and head not in _SECONDS and _CANONICAL_SECOND.fullmatch(head):
        if len(_SECONDS) >= _SECONDS_LIMIT:
            _SECONDS.clear()
        _SECONDS[head] = _parse_general(head + "Z")
    return ticks


def _parse_general(text: str) -> int:
    m = _ISO.fullmatch(text.strip())
    if m is None:
        raise ValueError(f"not an ISO 8601 date-time: {text[:40]!r}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    try:
        base = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except ValueError as exc:
        raise ValueError(f"not a valid date-time: {text[:40]!r} ({exc})") from None
    ticks = (base - _EPOCH) // timedelta(microseconds=1) * 10
    if frac:
        ticks += int((frac + "0000000")[:7])
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = int(digits[:2]) * 3600 + int(digits[2:]) * 60
        ticks -= sign * offset * TICKS_PER_SECOND
    return ticks


def ticks_to_iso(ticks: int) -> str:
    """The canonical UTC form with 7 fractional digits, e.g. ``2026-11-23T09:00:00.1234567Z``."""
    seconds, rest = divmod(ticks, TICKS_PER_SECOND)
    moment = _EPOCH + timedelta(seconds=seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{rest:07d}Z"


UNIX_EPOCH_TICKS = 621_355_968_000_000_000  # 1970-01-01T00:00:00Z in ticks


def unix_to_ticks(seconds: float) -> int:
    return UNIX_EPOCH_TICKS + int(seconds * TICKS_PER_SECOND)
