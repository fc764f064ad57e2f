"""Plain, typed IoT Hub events as the core sees them after validation (azure-facts §1).

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

    __hash__ = str.__hash__  # C hash, consistent with str equality (see shared.errors.Outcome)


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


@dataclass(slots=True, init=False)
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

    # An explicit __init__: compiled (shared/native.py), a dataclass's generated one stays interpreted.
    def __init__(self, id: str, topic: str, subject: str, event_type: str, kind: Kind, event_ticks: int,
                 device_id: str, module_id: str | None = None, hub_name: str | None = None,
                 sequence: int | None = None, twin_version: int | None = None, enqueued_ticks: int | None = None,
                 body: Any = None, content_type: str | None = None, content_encoding: str | None = None) -> None:
        self.id = id
        self.topic = topic
        self.subject = subject
        self.event_type = event_type
        self.kind = kind
        self.event_ticks = event_ticks
        self.device_id = device_id
        self.module_id = module_id
        self.hub_name = hub_name
        self.sequence = sequence
        self.twin_version = twin_version
        self.enqueued_ticks = enqueued_ticks
        self.body = body
        self.content_type = content_type
        self.content_encoding = content_encoding
