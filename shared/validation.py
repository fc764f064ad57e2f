"""Envelope detection and validation of every field of the five IoT Hub event types (azure-facts §1.1–1.2).

Two steps, so that the guard can reject foreign events before anything else is read:

1. ``read_envelope`` — which schema (CloudEvents when ``specversion`` is present), and the routing fields
   (id, topic/source, subject, type, time). Cheap; no ``data`` inspection.
2. ``validate_event`` — the whole event against the pydantic model of its type. Every problem is reported at
   once, each with its field path, in one ``PermanentError(SCHEMA_INVALID)``.

Tolerated quirks, on purpose: ids that are not UUIDs (the docs' own sample is not), ``deviceEtag: "null"``,
``moduleId: ""`` meaning "no module", ``lastActivityTime`` without a zone, extra fields anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.errors import Code, PermanentError, Problem
from shared.events import KIND_BY_EVENT_TYPE, IotHubEvent, Kind, Schema
from shared.timeparse import parse_ticks

# IoT Hub device ids: case-sensitive, up to 128 ASCII characters from this set. The current registry docs forbid
# '+' and '#' for *new* devices; older devices may still carry them, so the reader accepts the legacy superset.
DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9\-:.+%_#*?!(),=@;$']+$")]
HexSequence = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[0-9A-Fa-f]+$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


class _Model(BaseModel):
    # strict: a number is not a string and a string is not a number; extra: Azure adds fields over time.
    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)


class ConnectionStateInfo(_Model):
    sequenceNumber: HexSequence


class ConnectionData(_Model):
    hubName: NonEmpty
    deviceId: DeviceId
    moduleId: Annotated[str, StringConstraints(max_length=0)] | DeviceId | None = None  # "" = no module
    deviceConnectionStateEventInfo: ConnectionStateInfo


class TwinData(_Model):
    deviceId: str | None = None
    etag: str | None = None
    deviceEtag: str | None = None
    status: str | None = None
    version: int | None = Field(default=None, ge=0)


class LifecycleData(_Model):
    hubName: NonEmpty
    deviceId: DeviceId
    twin: TwinData


class SystemProperties(_Model):
    device_id: DeviceId = Field(alias="iothub-connection-device-id")
    module_id: Annotated[str, StringConstraints(max_length=0)] | DeviceId | None = Field(
        default=None, alias="iothub-connection-module-id")
    enqueued_time: NonEmpty = Field(alias="iothub-enqueuedtime")
    content_type: str | None = Field(default=None, alias="iothub-content-type")
    content_encoding: str | None = Field(default=None, alias="iothub-content-encoding")


class TelemetryData(_Model):
    body: dict[str, Any] | str
    # Application properties are strings on the wire; enrichment tools sometimes send numbers or booleans.
    properties: dict[str, str | int | float | bool | None] = Field(default_factory=dict)
    systemProperties: SystemProperties


_DATA_MODEL: dict[Kind, type[_Model]] = {
    Kind.CREATED: LifecycleData,
    Kind.DELETED: LifecycleData,
    Kind.CONNECTED: ConnectionData,
    Kind.DISCONNECTED: ConnectionData,
    Kind.TELEMETRY: TelemetryData,
}


@dataclass(frozen=True, slots=True)
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


_EG_FIELDS = (("id", "id"), ("topic", "topic"), ("subject", "subject"), ("event_type", "eventType"),
              ("time", "eventTime"))
_CE_FIELDS = (("id", "id"), ("topic", "source"), ("subject", "subject"), ("event_type", "type"), ("time", "time"))


def read_envelope(raw: Any) -> Envelope:
    """The routing fields of ``raw`` or a NOT_AN_EVENT / SCHEMA_INVALID error listing every missing one."""
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
    values: dict[str, str] = {}
    problems = []
    for attr, wire in fields:
        value = raw.get(wire)
        if not isinstance(value, str) or not value:
            expected = "required non-empty string" if value is None else "must be a non-empty string"
            problems.append(Problem(wire, expected))
        else:
            values[attr] = value
    if problems:
        raise PermanentError(Code.SCHEMA_INVALID, "event envelope is invalid", tuple(problems))
    return Envelope(schema=schema, **values)


def hub_name_of(topic: str) -> str | None:
    """The hub name from an IoT Hub resource id (telemetry carries no ``hubName``). IoT Hub sends topics upper-case
    and ``hubName`` lower-case; hub names are case-insensitive, so lower-case keeps ``{hubName}`` templates stable."""
    lowered = topic.lower().rstrip("/")
    marker = lowered.rfind("/iothubs/")
    if marker < 0:
        return None
    name = lowered[marker + len("/iothubs/"):]
    return name if name and "/" not in name else None


def _problems_from(exc: ValidationError, prefix: str) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in (prefix, *err["loc"]) if part != "")
        out.append(Problem(path, err["msg"]))
    return out


def validate_event(raw: dict[str, Any], envelope: Envelope) -> IotHubEvent:
    """The whole event as an ``IotHubEvent``; raises one SCHEMA_INVALID error listing every problem."""
    kind = KIND_BY_EVENT_TYPE[envelope.event_type]
    problems: list[Problem] = []
    time_name = envelope.names["time"]
    try:
        event_ticks = parse_ticks(envelope.time)
    except ValueError as exc:
        problems.append(Problem(time_name, str(exc)))
        event_ticks = 0
    data_raw = raw.get("data")
    if not isinstance(data_raw, dict):
        problems.append(Problem("data", "required object" if data_raw is None else "must be an object"))
        raise PermanentError(Code.SCHEMA_INVALID, f"invalid {envelope.event_type} event", tuple(problems))
    try:
        data = _DATA_MODEL[kind].model_validate(data_raw)
    except ValidationError as exc:
        problems.extend(_problems_from(exc, "data"))
        raise PermanentError(Code.SCHEMA_INVALID, f"invalid {envelope.event_type} event", tuple(problems)) from None

    def make(**fields: Any) -> IotHubEvent:
        return IotHubEvent(id=envelope.id, topic=envelope.topic, subject=envelope.subject,
                           event_type=envelope.event_type, kind=kind, event_ticks=event_ticks, **fields)

    event: IotHubEvent
    if isinstance(data, ConnectionData):
        event = make(device_id=data.deviceId, module_id=data.moduleId or None,
                            hub_name=data.hubName,
                            sequence=int(data.deviceConnectionStateEventInfo.sequenceNumber, 16))
    elif isinstance(data, LifecycleData):
        event = make(device_id=data.deviceId, hub_name=data.hubName, twin_version=data.twin.version)
    else:
        assert isinstance(data, TelemetryData)
        sysprops = data.systemProperties
        try:
            enqueued = parse_ticks(sysprops.enqueued_time)
        except ValueError as exc:
            problems.append(Problem("data.systemProperties.iothub-enqueuedtime", str(exc)))
            enqueued = 0
        event = make(
            device_id=sysprops.device_id, hub_name=hub_name_of(envelope.topic), module_id=sysprops.module_id or None,
            enqueued_ticks=enqueued, body=data.body, content_type=sysprops.content_type,
            content_encoding=sysprops.content_encoding,
        )
    if problems:
        raise PermanentError(Code.SCHEMA_INVALID, f"invalid {envelope.event_type} event", tuple(problems))
    return event
