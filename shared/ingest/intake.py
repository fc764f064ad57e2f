"""Intake: one raw event → one ``Intent`` for one twin, or the reason it goes no further.

Order matters for safety: size, then the envelope's topic and type (foreign events are refused before their data
is even read), then the subscription filters, then full validation, the subject check, decoding and mapping.
All of it is pure: no I/O, no Azure import.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from shared.errors import Code, PermanentError
from shared.ingest.decode import decode_body
from shared.ingest.events import IotHubEvent, Kind
from shared.ingest.guard import Guard, check_subject
from shared.ingest.json_elements import Unparsable
from shared.ingest.mapping import Mapper, TwinTarget
from shared.ingest.timeparse import TICKS_PER_SECOND, ticks_to_iso, unix_to_ticks
from shared.ingest.validation import Envelope, read_envelope, validate_event
from shared.settings.app_config import AppConfig
from shared.twins.freshness import CONNECTION, DELETED, LIFECYCLE, LIVE, TOMBSTONE, Intent

# Returns None when the event passes, else which filter rejected it (see shared/filters/config.py).
FilterCheck = Callable[[dict[str, Any]], str | None]


@dataclass(slots=True)
class Accepted:
    envelope: Envelope
    target: TwinTarget
    intent: Intent


@dataclass(slots=True)
class Filtered:
    envelope: Envelope
    reason: str


class Intake:
    def __init__(self, config: AppConfig, mapper: Mapper, event_filter: FilterCheck | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self._guard = Guard.from_config(config)
        self._clock = clock
        self._skew_ticks = config.limits.max_clock_skew_seconds * TICKS_PER_SECOND
        self._mapper = mapper
        self._filter = event_filter
        self._base64_json = config.telemetry.base64_json
        self._max_body = config.limits.max_body_bytes

    def not_after(self) -> int:
        """The latest ordering timestamp (ticks) accepted now: now plus the allowed clock skew."""
        return unix_to_ticks(self._clock()) + self._skew_ticks

    def accept(self, raw: Any, size: int | None = None, not_after: int | None = None) -> Accepted | Filtered:
        """Raises PermanentError (with code and field path) when the event must be quarantined. ``not_after``:
        ``self.not_after()`` taken once for a batch (a clock read per event cost ~2 % of the benchmark)."""
        if type(raw) is Unparsable:  # an element of a body or file that is not JSON (shared/ingest/json_elements.py)
            raise PermanentError.at(Code.MALFORMED_JSON, f"line {raw.line}", raw.error)
        # Always serialized once, even when the door knows the size: what cannot be written as JSON (by the state
        # store, the twin store or the quarantine) must stop here, with its path, not raise later and take the batch.
        serialized = check_representable(raw)
        self._guard.check_size(size if size is not None else serialized)
        envelope = read_envelope(raw)
        self._guard.check_envelope(envelope)
        if self._filter is not None:
            reason = self._filter(raw)
            if reason is not None:
                return Filtered(envelope, reason)
        event = validate_event(raw, envelope)
        self._check_not_future(event, envelope, self.not_after() if not_after is None else not_after)
        check_subject(event)
        target = self._mapper.target(event)
        intent = self._intent(event, target)
        if not intent.fields:
            return Filtered(envelope, "no mapped telemetry fields")
        return Accepted(envelope, target, intent)

    def _check_not_future(self, event: IotHubEvent, envelope: Envelope, limit: int) -> None:
        """An ordering timestamp beyond now + the allowed skew would win over every real event until that date."""
        if event.event_ticks > limit:
            self._future(envelope.names["time"], event.event_ticks)
        enqueued = event.enqueued_ticks
        if enqueued is not None and enqueued > limit:
            self._future("data.systemProperties.iothub-enqueuedtime", enqueued)

    def _future(self, path: str, ticks: int) -> None:
        raise PermanentError.at(
            Code.FUTURE_TIMESTAMP, path,
            f"{ticks_to_iso(ticks)} is later than now + {self._skew_ticks // TICKS_PER_SECOND} s "
            "(limits.max_clock_skew_seconds)")

    def _intent(self, event: IotHubEvent, target: TwinTarget) -> Intent:
        kind = event.kind
        ticks = event.event_ticks
        if kind is Kind.TELEMETRY:
            body = decode_body(event, base64_json=self._base64_json, max_bytes=self._max_body)
            enqueued = event.enqueued_ticks or 0
            return Intent(event.id, target.twin_id, False, (enqueued, event.id), enqueued,
                          self._mapper.telemetry_fields(target, body))
        if kind is Kind.CONNECTED or kind is Kind.DISCONNECTED:
            return Intent(event.id, target.twin_id, False, (event.sequence or 0,), ticks,
                          {CONNECTION: kind is Kind.CONNECTED})
        version = event.twin_version if event.twin_version is not None else -1
        if kind is Kind.CREATED:
            return Intent(event.id, target.twin_id, True, (ticks, version, 0), ticks, {LIFECYCLE: LIVE})
        return Intent(event.id, target.twin_id, True, (ticks, version, 1), ticks,
                      {LIFECYCLE: DELETED, TOMBSTONE: DELETED})


# orjson writes at most this many levels of nesting (its documented recursion limit is 254).
MAX_NESTING = 254
MAX_PATH_CHARS = 120
_INT64 = range(-(2**63), 2**64)  # what orjson writes: signed 64 bits, and unsigned up to 2**64 - 1


def check_representable(raw: Any) -> int:
    """The event's size as JSON; a value JSON (orjson) cannot carry anywhere in it is bad input, not a crash:
    UNSUPPORTED_VALUE with the path of the first such value. One serialization in C for the good case; the walk
    that finds the path runs only when it fails (iterative: 10,000 levels must not recurse). NaN and infinities
    pass here (orjson writes them as null); they only matter where a value reaches a twin, and the mapping refuses
    them there with the same code (shared/ingest/mapping.py)."""
    try:
        return len(orjson.dumps(raw))
    except (TypeError, orjson.JSONEncodeError) as exc:
        found = find_unsupported(raw)
        path, reason = found if found is not None else ("", f"event holds a value JSON cannot carry: {exc}")
        if len(path) > MAX_PATH_CHARS:  # 254 levels of keys: where it starts says enough
            path = path[:MAX_PATH_CHARS] + "…"
        raise PermanentError.at(Code.UNSUPPORTED_VALUE, path, reason) from None


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _text_problem(text: str) -> str | None:
    if text.isascii():
        return None
    try:
        text.encode()
    except UnicodeEncodeError:
        return "text holds a lone surrogate (not Unicode text, cannot be UTF-8)"
    return None


def find_unsupported(raw: Any) -> tuple[str, str] | None:
    """(path, reason) of the first value JSON cannot carry, or None. NaN and infinities count (orjson writes them
    as null, silently: a twin would get null). Never raises, never recurses."""
    stack: list[tuple[Any, str, int]] = [(raw, "", 1)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_NESTING:
                return path, f"nested deeper than {MAX_NESTING} levels"
            items = value.items() if isinstance(value, dict) else enumerate(value)
            children = []
            for key, child in items:
                if isinstance(value, dict):
                    if not isinstance(key, str):
                        return path, f"object key of type {type(key).__name__} (JSON keys are text)"
                    problem = _text_problem(key)
                    if problem is not None:
                        return path, f"object key: {problem}"
                children.append((child, _join(path, key), depth + 1))
            stack.extend(reversed(children))
        elif value is None or isinstance(value, bool):
            continue
        elif isinstance(value, str):
            problem = _text_problem(value)
            if problem is not None:
                return path, problem
        elif isinstance(value, int):
            if value not in _INT64:
                return path, "integer beyond 64 bits"
        elif isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                return path, f"{value!r} is not a JSON number"
        else:
            return path, f"{type(value).__name__} is not a JSON value"
    return None
