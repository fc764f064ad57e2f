"""Envelope detection and validation of every field of the five IoT Hub event types (docs/azure-behaviour.md §1.1–1.2).

Two steps, so that the guard can reject foreign events before anything else is read:

1. ``read_envelope`` — which schema (CloudEvents when ``specversion`` is present), and the routing fields
   (id, topic/source, subject, type, time). Cheap; no ``data`` inspection.
2. ``validate_event`` — the whole event against the pydantic model of its type. Every problem is reported at
   once, each with its field path, in one ``PermanentError(SCHEMA_INVALID)``.

Tolerated quirks, on purpose: ids that are not UUIDs (the docs' own sample is not), ``deviceEtag: "null"``,
``moduleId: ""`` meaning "no module", ``lastActivityTime`` without a zone, extra fields anywhere.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.errors import Code, PermanentError, Problem
from shared.ingest.events import KIND_BY_EVENT_TYPE, IotHubEvent, Kind, Schema
from shared.ingest.schemas import VALIDATE_DATA
from shared.ingest.timeparse import parse_ticks


@dataclass(slots=True)
class Envelope:
    """The routing fields of one event, whichever schema carried it."""

    schema: Schema
    id: str
    topic: str
    subject: str
    event_type: str
    time: str

    # Field names as the schema spells them, for error paths.
    @property
    def names(self) -> dict[str, str]:
        if self.schema is Schema.CLOUD_EVENTS:
            return {"topic": "source", "event_type": "type", "time": "time"}
        return {"topic": "topic", "event_type": "eventType", "time": "eventTime"}


# The routing fields as each schema spells them, in Envelope's order (id, topic, subject, event type, time).
_EG_FIELDS = ("id", "topic", "subject", "eventType", "eventTime")
_CE_FIELDS = ("id", "source", "subject", "type", "time")


def read_envelope(raw: Any) -> Envelope:
    """The routing fields of ``raw`` or a NOT_AN_EVENT / SCHEMA_INVALID error listing every missing one."""
    if type(raw) is dict and "specversion" not in raw:
        # The common case, spelled out: this runs for every event (the loop below costs twice as much).
        get = raw.get
        i, topic, subject, kind, time = get("id"), get("topic"), get("subject"), get("eventType"), get("eventTime")
        if (type(i) is str and type(topic) is str and type(subject) is str and type(kind) is str
                and type(time) is str and i and topic and subject and kind and time):
            return Envelope(Schema.EVENT_GRID, i, topic, subject, kind, time)
    if not isinstance(raw, dict):
        raise PermanentError.at(Code.NOT_AN_EVENT, "", f"expected a JSON object, got {type(raw).__name__}")
    if "specversion" in raw:
        schema, fields = Schema.CLOUD_EVENTS, _CE_FIELDS
        if raw["specversion"] != "1.0":
            raise PermanentError.at(Code.NOT_AN_EVENT, "specversion", "only CloudEvents 1.0 is supported")
    elif "eventType" in raw or "topic" in raw:
        schema, fields = Schema.EVENT_GRID, _EG_FIELDS
    else:
        raise PermanentError.at(
            Code.NOT_AN_EVENT, "", "neither an Event Grid event (eventType) nor a CloudEvent (specversion)"
        )
    values = [raw.get(wire) for wire in fields]
    problems = [Problem(wire, "required non-empty string" if value is None else "must be a non-empty string")
                for wire, value in zip(fields, values, strict=True) if not isinstance(value, str) or not value]
    if problems:
        raise PermanentError(Code.SCHEMA_INVALID, "event envelope is invalid", tuple(problems))
    return Envelope(schema, *values)  # type: ignore[arg-type]  # each checked to be a str just above


@functools.lru_cache(maxsize=256)  # one topic per hub: computed once, not per event
def hub_name_of(topic: str) -> str | None:
    """The hub name from an IoT Hub resource id (telemetry carries no ``hubName``). IoT Hub sends topics upper-case
    and ``hubName`` lower-case; hub names are case-insensitive, so lower-case keeps ``{hubName}`` templates stable."""
    lowered = topic.lower().rstrip("/")
    marker = lowered.rfind("/iothubs/")
    if marker < 0:
        return None
    name = lowered[marker + len("/iothubs/"):]
    return name if name and "/" not in name else None


def _wire_path(data: Any, loc: tuple[int | str, ...], missing: bool) -> list[str | int]:
    """The parts of a pydantic error location that name fields of the input. pydantic also puts the member of a
    union or a constrained type into the location (``json-or-python[json=dict[any,any],...]``, ``str``,
    ``constrained-str``): those name no field of the event, so only keys and indexes the input really has (or the
    missing key itself) are kept."""
    parts: list[str | int] = []
    current = data
    for i, part in enumerate(loc):
        in_dict = isinstance(current, dict) and part in current
        if in_dict or (isinstance(current, list) and isinstance(part, int) and -len(current) <= part < len(current)):
            current = current[part]
        elif missing and i == len(loc) - 1 and isinstance(current, dict):
            pass  # the required key that is absent
        else:
            continue
        parts.append(part)
    return parts


def _problems_from(exc: ValidationError, data: Any, prefix: str) -> list[Problem]:
    """One problem per field path; a union's alternatives become one message ("... or a valid string")."""
    by_path: dict[str, list[str]] = {}
    for err in exc.errors(include_url=False):
        parts = _wire_path(data, tuple(err["loc"]), err["type"] == "missing")
        path = prefix
        for part in parts:
            path = f"{path}[{part}]" if isinstance(part, int) else f"{path}.{part}"
        messages = by_path.setdefault(path, [])
        if err["msg"] not in messages:
            messages.append(err["msg"])
    out = []
    for path, messages in by_path.items():
        head, rest = messages[0], [m.removeprefix("Input should be ") for m in messages[1:]]
        out.append(Problem(path, " or ".join([head, *rest])))
    return out


def validate_event(raw: dict[str, Any], envelope: Envelope) -> IotHubEvent:
    """The whole event as an ``IotHubEvent``; raises one SCHEMA_INVALID error listing every problem."""
    kind = KIND_BY_EVENT_TYPE[envelope.event_type]
    problems: list[Problem] = []
    try:
        event_ticks = parse_ticks(envelope.time)
    except ValueError as exc:
        problems.append(Problem(envelope.names["time"], str(exc)))
        event_ticks = 0
    data = raw.get("data")
    if not isinstance(data, dict):
        problems.append(Problem("data", "required object" if data is None else "must be an object"))
        raise PermanentError(Code.SCHEMA_INVALID, f"invalid {envelope.event_type} event", tuple(problems))
    try:
        data = VALIDATE_DATA[kind](data)
    except ValidationError as invalid:  # not `exc`: compiled, one name holds one type per function
        problems.extend(_problems_from(invalid, data, "data"))
        raise PermanentError(Code.SCHEMA_INVALID, f"invalid {envelope.event_type} event", tuple(problems)) from None

    event: IotHubEvent
    if kind is Kind.TELEMETRY:
        system = data["systemProperties"]
        enqueued_text = system["iothub-enqueuedtime"]
        if enqueued_text == envelope.time and not problems:
            enqueued = event_ticks  # IoT Hub stamps a telemetry event's time with its enqueued time: read once
        else:
            try:
                enqueued = parse_ticks(enqueued_text)
            except ValueError as exc:
                problems.append(Problem("data.systemProperties.iothub-enqueuedtime", str(exc)))
                enqueued = 0
        event = IotHubEvent(envelope.id, envelope.topic, envelope.subject, envelope.event_type, kind, event_ticks,
                            system["iothub-connection-device-id"], system.get("iothub-connection-module-id") or None,
                            hub_name_of(envelope.topic), None, None, enqueued, data["body"],
                            system.get("iothub-content-type"), system.get("iothub-content-encoding"))
    elif kind is Kind.CONNECTED or kind is Kind.DISCONNECTED:
        event = IotHubEvent(envelope.id, envelope.topic, envelope.subject, envelope.event_type, kind, event_ticks,
                            data["deviceId"], data.get("moduleId") or None, data["hubName"],
                            int(data["deviceConnectionStateEventInfo"]["sequenceNumber"], 16))
    else:
        event = IotHubEvent(envelope.id, envelope.topic, envelope.subject, envelope.event_type, kind, event_ticks,
                            data["deviceId"], None, data["hubName"], twin_version=data["twin"].get("version"))
    if problems:
        raise PermanentError(Code.SCHEMA_INVALID, f"invalid {envelope.event_type} event", tuple(problems))
    return event
