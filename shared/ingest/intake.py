"""Intake: one raw event → one ``Intent`` for one twin, or the reason it goes no further.

Order matters for safety: size, then the envelope's topic and type (foreign events are refused before their data
is even read), then the subscription filters, then full validation, the subject check, decoding and mapping.
All of it is pure: no I/O, no Azure import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from shared.errors import Code, PermanentError
from shared.ingest.decode import decode_body
from shared.ingest.events import IotHubEvent, Kind
from shared.ingest.guard import Guard, check_subject
from shared.ingest.mapping import Mapper, TwinTarget
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
    def __init__(self, config: AppConfig, mapper: Mapper, event_filter: FilterCheck | None = None) -> None:
        self._guard = Guard.from_config(config)
        self._mapper = mapper
        self._filter = event_filter
        self._base64_json = config.telemetry.base64_json
        self._max_body = config.limits.max_body_bytes

    def accept(self, raw: Any, size: int | None = None) -> Accepted | Filtered:
        """Raises PermanentError (with code and field path) when the event must be quarantined."""
        self._guard.check_size(size if size is not None else _serialized_size(raw))
        envelope = read_envelope(raw)
        self._guard.check_envelope(envelope)
        if self._filter is not None:
            reason = self._filter(raw)
            if reason is not None:
                return Filtered(envelope, reason)
        event = validate_event(raw, envelope)
        check_subject(event)
        target = self._mapper.target(event)
        intent = self._intent(event, target)
        if not intent.fields:
            return Filtered(envelope, "no mapped telemetry fields")
        return Accepted(envelope, target, intent)

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


def _serialized_size(raw: Any) -> int:
    """The event's size as JSON; a value JSON cannot carry (an integer beyond 64 bits) is bad input, not a crash."""
    try:
        return len(orjson.dumps(raw))
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise PermanentError.at(Code.SCHEMA_INVALID, "", f"event holds a value JSON cannot carry: {exc}") from None
