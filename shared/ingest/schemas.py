"""The data schemas of the five IoT Hub event types, as pydantic TypedDicts (docs/azure-behaviour.md §1.2).

Kept apart from ``shared.ingest.validation``: these are declarations pydantic reads, that module is the logic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, InstanceOf, StringConstraints, TypeAdapter
from typing_extensions import TypedDict

from shared.ingest.events import Kind

# IoT Hub device ids: case-sensitive, up to 128 ASCII characters from this set. The current registry docs forbid
# '+' and '#' for *new* devices; older devices may still carry them, so the reader accepts the legacy superset.
DeviceId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9\-:.+%_#*?!(),=@;$']+$")]
# IoT Hub's connection sequence numbers: hex text of a 256-bit number, i.e. at most 64 hex digits (docs/reliability.md,
# "Sequence numbers"). Longer text is not IoT Hub's and would pin the connection state above any real event.
SEQUENCE_HEX_DIGITS = 64
HexSequence = Annotated[str, StringConstraints(min_length=1, max_length=SEQUENCE_HEX_DIGITS, pattern=r"^[0-9A-Fa-f]+$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]


# strict: a number is not a string and a string is not a number; extra fields are ignored (Azure adds fields over
# time). TypedDicts rather than BaseModels: pydantic-core validates them in one call and builds no model objects,
# which the benchmark's profile showed to be ~40 % cheaper per event; error locations are the wire names either way.
_STRICT = ConfigDict(strict=True, extra="ignore")
NoModule = Annotated[str, StringConstraints(max_length=0)] | DeviceId | None  # "" = no module


class ConnectionStateInfo(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    sequenceNumber: HexSequence


class ConnectionData(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    hubName: NonEmpty
    deviceId: DeviceId
    moduleId: NotRequired[NoModule]
    deviceConnectionStateEventInfo: ConnectionStateInfo


class TwinData(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    deviceId: NotRequired[str | None]
    etag: NotRequired[str | None]
    deviceEtag: NotRequired[str | None]
    status: NotRequired[str | None]
    version: NotRequired[Annotated[int, Field(ge=0)] | None]


class LifecycleData(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    hubName: NonEmpty
    deviceId: DeviceId
    twin: TwinData


# The system properties' names are not identifiers: the functional form spells them as they are on the wire.
SystemProperties = TypedDict("SystemProperties", {
    "iothub-connection-device-id": DeviceId,
    "iothub-connection-module-id": NotRequired[NoModule],
    "iothub-enqueuedtime": NonEmpty,
    "iothub-content-type": NotRequired[str | None],
    "iothub-content-encoding": NotRequired[str | None],
})
SystemProperties.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]


class TelemetryData(TypedDict):
    __pydantic_config__ = _STRICT  # type: ignore[misc]
    # An object (checked, not copied: JSON object keys are strings, and the body is only read) or base64 text.
    body: InstanceOf[dict] | str  # type: ignore[type-arg]
    # Application properties are strings on the wire; enrichment tools sometimes send numbers or booleans.
    properties: NotRequired[dict[str, str | int | float | bool | None]]
    systemProperties: SystemProperties


VALIDATE_DATA: dict[Kind, Callable[[Any], Any]] = {
    kind: TypeAdapter(schema).validator.validate_python  # the compiled validator itself: no wrapper per call
    for kind, schema in ((Kind.CREATED, LifecycleData), (Kind.DELETED, LifecycleData),
                         (Kind.CONNECTED, ConnectionData), (Kind.DISCONNECTED, ConnectionData),
                         (Kind.TELEMETRY, TelemetryData))
}
