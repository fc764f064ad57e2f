"""Plain, typed IoT Hub events as the core sees them after validation (docs/azure-behaviour.md §1).

Both wire schemas (Event Grid and CloudEvents 1.0) become the same ``IotHubEvent``; nothing downstream needs to
know which schema delivered an event.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final


class Kind(StrEnum):
    CREATED = "created"
    DELETED = "deleted"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    TELEMETRY = "telemetry"

DEVICE_CREATED: Final = "Microsoft.Devices.DeviceCreated"
DEVICE_DELETED: Final = "Microsoft.Devices.DeviceDeleted"
DEVICE_CONNECTED: Final = "Microsoft.Devices.DeviceConnected"
DEVICE_DISCONNECTED: Final = "Microsoft.Devices.DeviceDisconnected"
DEVICE_TELEMETRY: Final = "Microsoft.Devices.DeviceTelemetry"

KIND_BY_EVENT_TYPE: Final[dict[str, Kind]] = {
    DEVICE_CREATED: Kind.CREATED,
    DEVICE_DELETED: Kind.DELETED,
    DEVICE_CONNECTED: Kind.CONNECTED,
    DEVICE_DISCONNECTED: Kind.DISCONNECTED,
    DEVICE_TELEMETRY: Kind.TELEMETRY,
}
IOT_HUB_EVENT_TYPES: Final = frozenset(KIND_BY_EVENT_TYPE)


class Schema(StrEnum):
    EVENT_GRID = "eventgrid"
    CLOUD_EVENTS = "cloudevents"


@dataclass(slots=True)
class IotHubEvent:
    """One validated IoT Hub event. Fields not relevant to ``kind`` are None."""

    id: str
    topic: str
    subject: str
    event_type: str
    kind: Kind
    event_ticks: int
    device_id: str
    module_id: str | None = None
    hub_name: str | None = None
    # DeviceConnected / DeviceDisconnected: the hex sequence number, as an integer for comparison.
    sequence: int | None = None
    # DeviceCreated / DeviceDeleted: the IoT Hub twin version (+1 per twin update).
    twin_version: int | None = None
    # DeviceTelemetry: as delivered (object or base64 string) with its system and application properties.
    enqueued_ticks: int | None = None
    body: Any = None
    content_type: str | None = None
    content_encoding: str | None = None
