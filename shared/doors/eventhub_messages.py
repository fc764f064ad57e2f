"""IoT Hub's built-in Event Hubs endpoint → the Event Grid-shaped event dicts the pipeline validates.

Messages from the built-in endpoint carry no Event Grid envelope, so one is built here, and validated afterwards
exactly like one that came through Event Grid (topic and type guard, field validation, subject check):

* topic — the configured ``IOTHUB_RESOURCE_ID``. The Event Hubs connection is the trust boundary: whoever can
  read that hub's endpoint reads that IoT Hub, so its resource id is stamped here and the guard checks it.
* id — ``eh-<partition>-<sequence number>``: stable across redeliveries, so a re-read message is a duplicate.
* ``iothub-message-source`` picks the kind (iot-hub-non-telemetry-event-schema, 2024-04):
  - ``Telemetry`` (or absent) → DeviceTelemetry; body an object when content type/encoding say JSON/UTF-8,
    otherwise base64, as IoT Hub itself does for Event Grid (docs/azure-behaviour.md §1.2);
  - ``deviceConnectionStateEvents`` → DeviceConnected/Disconnected from ``opType`` (deviceConnected /
    deviceDisconnected), sequence number from the body ``{"sequenceNumber": "<hex>"}``;
  - ``deviceLifecycleEvents`` → DeviceCreated/Deleted from ``opType`` (createDeviceIdentity /
    deleteDeviceIdentity), the body being the twin. Module lifecycle events are ignored: Event Grid has no
    module lifecycle event and the pipeline's lifecycle is per device;
  - anything else (twin change, digital twin change, jobs) is ignored.
  Application properties ``hubName``, ``deviceId``, ``moduleId``, ``operationTimestamp`` come with the non-telemetry
  messages; ``operationTimestamp`` becomes the event time (it is when the change happened, not when it was sent).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.errors import Code, PermanentError
from shared.ingest.decode import is_json_content
from shared.ingest.events import DEVICE_CONNECTED, DEVICE_CREATED, DEVICE_DELETED, DEVICE_DISCONNECTED, DEVICE_TELEMETRY
from shared.ingest.json_elements import parse_element
from shared.ingest.timeparse import parse_ticks, ticks_to_iso

TELEMETRY_SOURCE = "telemetry"
CONNECTION_SOURCE = "deviceconnectionstateevents"
LIFECYCLE_SOURCE = "devicelifecycleevents"
_CONNECTION_OPS = {"deviceconnected": DEVICE_CONNECTED, "devicedisconnected": DEVICE_DISCONNECTED}
_LIFECYCLE_OPS = {"createdeviceidentity": DEVICE_CREATED, "deletedeviceidentity": DEVICE_DELETED}
# Where hosts put the AMQP content type/encoding among the system properties (names vary by host version).
_CONTENT_TYPE_KEYS = ("iothub-content-type", "content-type", "ContentType")
_CONTENT_ENCODING_KEYS = ("iothub-content-encoding", "content-encoding", "ContentEncoding")
_EPOCH_TICKS = parse_ticks("1970-01-01T00:00:00Z")


@dataclass(frozen=True, slots=True)
class StreamMessage:
    """One Event Hubs message as the trigger delivers it."""

    body: bytes
    system: dict[str, Any] = field(default_factory=dict)  # SystemPropertiesArray[i]: iothub-*, x-opt-*, …
    properties: dict[str, Any] = field(default_factory=dict)  # PropertiesArray[i]: application properties
    partition: str | None = None
    sequence_number: int | None = None
    enqueued_time: str | None = None  # the Event Hubs enqueued time (ISO), when the system properties lack one

    def describe(self) -> dict[str, Any]:
        """What the quarantine keeps of a message that never became an event (replayable: body in base64)."""
        return {"source": "eventhub", "partition": self.partition, "sequenceNumber": self.sequence_number,
                "systemProperties": _jsonable(self.system), "properties": _jsonable(self.properties),
                "body": base64.b64encode(self.body).decode()}


@dataclass(frozen=True, slots=True)
class Ignored:
    reason: str


def to_event(message: StreamMessage, topic: str) -> dict[str, Any] | Ignored:
    """The event dict for ``message`` or why it is ignored; PermanentError when it cannot be one."""
    source = str(message.system.get("iothub-message-source") or "Telemetry").lower()
    if source == TELEMETRY_SOURCE:
        return _telemetry(message, topic)
    if source == CONNECTION_SOURCE:
        return _connection(message, topic)
    if source == LIFECYCLE_SOURCE:
        return _lifecycle(message, topic)
    return Ignored(f"message source {source!r} is not handled")


def _first(mapping: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _time_iso(value: Any) -> str | None:
    """IoT Hub times arrive as ISO strings (Functions metadata) or epoch milliseconds (raw AMQP annotations)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return ticks_to_iso(_EPOCH_TICKS + int(value * 10_000))
    if isinstance(value, str) and value:
        try:
            return ticks_to_iso(parse_ticks(value))
        except ValueError:
            return value  # validation reports it with its field path
    return None


def _event_id(message: StreamMessage) -> str:
    if message.sequence_number is not None:
        return f"eh-{message.partition or 'p'}-{message.sequence_number}"
    for key in ("message-id", "MessageId", "correlation-id"):
        value = message.system.get(key)
        if isinstance(value, str) and value:
            return f"eh-{value}"
    digest = orjson.dumps([message.system, message.properties]).hex()[:32]
    return f"eh-{digest}-{len(message.body)}"


def _subject(device_id: str, module_id: str | None) -> str:
    return f"devices/{device_id}/modules/{module_id}" if module_id else f"devices/{device_id}"


def _envelope(message: StreamMessage, topic: str, event_type: str, device_id: str, module_id: str | None,
              time: str | None, data: dict[str, Any], data_version: str = "1") -> dict[str, Any]:
    if not time:
        raise PermanentError.at(Code.SCHEMA_INVALID, "systemProperties.iothub-enqueuedtime",
                                "the message has no enqueued time")
    return {"id": _event_id(message), "topic": topic, "subject": _subject(device_id, module_id),
            "eventType": event_type, "eventTime": time, "data": data, "dataVersion": data_version,
            "metadataVersion": "1"}


def _device_id(message: StreamMessage, *, from_properties: bool) -> str:
    device = message.system.get("iothub-connection-device-id")
    if from_properties and not device:
        device = message.properties.get("deviceId")
    if not isinstance(device, str) or not device:
        raise PermanentError.at(Code.SCHEMA_INVALID, "systemProperties.iothub-connection-device-id",
                                "the message does not say which device sent it")
    return device


def _enqueued(message: StreamMessage) -> str | None:
    return _time_iso(message.system.get("iothub-enqueuedtime")) or _time_iso(message.enqueued_time)


def _telemetry(message: StreamMessage, topic: str) -> dict[str, Any]:
    device = _device_id(message, from_properties=False)
    module = message.system.get("iothub-connection-module-id") or None
    content_type = _first(message.system, _CONTENT_TYPE_KEYS)
    content_encoding = _first(message.system, _CONTENT_ENCODING_KEYS)
    body: Any
    if is_json_content(content_type, content_encoding):
        try:
            # As the other doors read JSON: integers beyond 64 bits exact, NaN and lone-surrogate escapes read, so
            # the pipeline gives them the same code and path (UNSUPPORTED_VALUE) as on the Event Grid doors.
            body = parse_element(message.body)
        except ValueError:
            raise PermanentError.at(Code.BODY_NOT_JSON, "data.body",
                                    "content type says JSON but the body is not UTF-8 JSON") from None
        if not isinstance(body, dict):
            raise PermanentError.at(Code.BODY_NOT_JSON, "data.body",
                                    f"body is a JSON {type(body).__name__}, expected an object")
    else:
        body = base64.b64encode(message.body).decode()
    enqueued = _enqueued(message)
    system: dict[str, str] = {k: str(v) for k, v in message.system.items()
                              if k.startswith("iothub-") and isinstance(v, str | int | float)}
    system["iothub-connection-device-id"] = device
    if enqueued:
        system["iothub-enqueuedtime"] = enqueued
    if content_type:
        system["iothub-content-type"] = content_type
    if content_encoding:
        system["iothub-content-encoding"] = content_encoding
    data = {"body": body, "properties": _jsonable(message.properties), "systemProperties": system}
    return _envelope(message, topic, DEVICE_TELEMETRY, device, module if isinstance(module, str) else None,
                     enqueued, data, data_version="")


def _operation(message: StreamMessage, table: dict[str, str]) -> str:
    op = message.properties.get("opType")
    event_type = table.get(str(op).lower()) if isinstance(op, str) else None
    if event_type is None:
        raise PermanentError.at(Code.SCHEMA_INVALID, "properties.opType", f"unexpected opType {op!r}")
    return event_type


def _json_body(message: StreamMessage) -> dict[str, Any]:
    try:
        body = parse_element(message.body)  # as for telemetry (_telemetry)
    except ValueError:
        raise PermanentError.at(Code.BODY_NOT_JSON, "data", "notification body is not JSON") from None
    if not isinstance(body, dict):
        raise PermanentError.at(Code.BODY_NOT_JSON, "data", "notification body is not a JSON object")
    return body


def _hub_name(message: StreamMessage) -> Any:
    return message.properties.get("hubName") or message.system.get("user-id") or message.system.get("UserId")


def _connection(message: StreamMessage, topic: str) -> dict[str, Any]:
    event_type = _operation(message, _CONNECTION_OPS)
    device = _device_id(message, from_properties=True)
    module = message.properties.get("moduleId") or message.system.get("iothub-connection-module-id") or ""
    body = _json_body(message)
    data = {"hubName": _hub_name(message), "deviceId": device, "moduleId": module,
            "deviceConnectionStateEventInfo": {"sequenceNumber": body.get("sequenceNumber")}}
    time = _time_iso(message.properties.get("operationTimestamp")) or _enqueued(message)
    return _envelope(message, topic, event_type, device, module or None, time, data)


def _lifecycle(message: StreamMessage, topic: str) -> dict[str, Any] | Ignored:
    module = message.properties.get("moduleId") or message.system.get("iothub-connection-module-id")
    if module:
        return Ignored("module lifecycle events are not device lifecycle events")
    event_type = _operation(message, _LIFECYCLE_OPS)
    device = _device_id(message, from_properties=True)
    twin = _json_body(message)
    data = {"hubName": _hub_name(message), "deviceId": device, "twin": twin}
    time = _time_iso(message.properties.get("operationTimestamp")) or _enqueued(message)
    return _envelope(message, topic, event_type, device, None, time, data)


def _jsonable(mapping: dict[str, Any]) -> dict[str, Any]:
    """Application properties as the validator accepts them: primitives as they are, anything else as text."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        out[str(key)] = value if value is None or isinstance(value, str | int | float | bool) else str(value)
    return out
