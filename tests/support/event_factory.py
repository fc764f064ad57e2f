"""Builders for IoT Hub events in both schemas, shaped exactly like the documented payloads (docs/azure-behaviour.md
§1).

Use these for variants; the captured samples live in tests/events/*.json and load through tests.support.fixtures.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

TOPIC = ("/SUBSCRIPTIONS/0A1B2C3D-0000-4000-8000-000000000001/RESOURCEGROUPS/FACTORY-RG"
         "/PROVIDERS/MICROSOFT.DEVICES/IOTHUBS/FACTORY-HUB")
HUB = "factory-hub"
PREFIX = "Microsoft.Devices."


def _time(second: float) -> str:
    whole = int(second)
    frac = round((second - whole) * 10_000_000)
    minutes, sec = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2026-11-23T{10 + hours:02d}:{minutes:02d}:{sec:02d}.{frac:07d}Z"


def _envelope(event_type: str, device: str, event_id: str, second: float, data: dict[str, Any],
              data_version: str = "1") -> dict[str, Any]:
    return {"id": event_id, "topic": TOPIC, "subject": f"devices/{device}", "eventType": PREFIX + event_type,
            "eventTime": _time(second), "data": data, "dataVersion": data_version, "metadataVersion": "1"}


def lifecycle(device: str, *, created: bool = True, second: float = 0, version: int = 1,
              event_id: str | None = None) -> dict[str, Any]:
    kind = "DeviceCreated" if created else "DeviceDeleted"
    twin = {"deviceId": device, "etag": "AAAAAAAAAAE=", "deviceEtag": "null", "status": "enabled",
            "statusUpdateTime": "0001-01-01T00:00:00", "connectionState": "Disconnected",
            "lastActivityTime": "0001-01-01T00:00:00", "cloudToDeviceMessageCount": 0,
            "authenticationType": "sas", "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
            "version": version,
            "properties": {"desired": {"$metadata": {"$lastUpdated": _time(second)}, "$version": 1},
                           "reported": {"$metadata": {"$lastUpdated": _time(second)}, "$version": 1}}}
    return _envelope(kind, device, event_id or f"{kind}-{device}-{version}-{second}", second,
                     {"twin": twin, "hubName": HUB, "deviceId": device})


def connection(device: str, sequence: int, *, connected: bool = True, second: float = 0, module: str = "",
               event_id: str | None = None) -> dict[str, Any]:
    kind = "DeviceConnected" if connected else "DeviceDisconnected"
    data = {"deviceConnectionStateEventInfo": {"sequenceNumber": f"{sequence:064X}"}, "hubName": HUB,
            "deviceId": device, "moduleId": module}
    return _envelope(kind, device, event_id or f"{kind}-{device}-{module}-{sequence}", second, data)


def telemetry(device: str, body: dict[str, Any], *, second: float = 0, event_id: str | None = None,
              encoding: str = "json", module: str | None = None,
              properties: dict[str, Any] | None = None) -> dict[str, Any]:
    """encoding: 'json' (object body, proper content type), 'base64' (no content type), 'base64-typed'."""
    sysprops = {"iothub-connection-device-id": device, "iothub-connection-auth-method":
                '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}',
                "iothub-connection-auth-generation-id": "636775960478541711",
                "iothub-enqueuedtime": _time(second + 0.25)[:-5] + "Z", "iothub-message-source": "Telemetry"}
    if module:
        sysprops["iothub-connection-module-id"] = module
    payload: Any = body
    if encoding == "json":
        sysprops["iothub-content-type"] = "application/json"
        sysprops["iothub-content-encoding"] = "utf-8"
    else:
        payload = base64.b64encode(orjson.dumps(body)).decode()
        if encoding == "base64-typed":
            sysprops["iothub-content-type"] = "application/octet-stream"
    data = {"properties": properties or {}, "systemProperties": sysprops, "body": payload}
    return _envelope("DeviceTelemetry", device, event_id or f"tel-{device}-{second}", second, data, data_version="")


def to_cloudevent(event: dict[str, Any]) -> dict[str, Any]:
    """The same event in the CloudEvents 1.0 schema (as an Event Grid subscription with CE output sends it)."""
    return {"specversion": "1.0", "id": event["id"], "source": event["topic"], "subject": event["subject"],
            "type": event["eventType"], "time": event["eventTime"], "data": event["data"]}
