"""A deterministic, seeded stream of Event Grid IoT Hub events, as the raw JSON bytes a door receives.

Shapes follow the documented payloads (the same as tests/support/event_factory.py builds): about 90 % telemetry with a
JSON body, 5 % telemetry with a base64 body (a device that did not set contentType/contentEncoding), 5 % lifecycle
and connection events. Sizes land between about 0.5 and 1 KB. Time moves forward by a few milliseconds per event,
so freshness sees realistic, mostly in-order traffic with the odd late event.

Everything is generated lazily, one batch at a time: memory does not grow with the number of events.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from shared.ingest.timeparse import parse_ticks, ticks_to_iso

TOPIC = ("/SUBSCRIPTIONS/5B6C7D8E-0000-4000-8000-00000000BE4C/RESOURCEGROUPS/BENCH-RG"
         "/PROVIDERS/MICROSOFT.DEVICES/IOTHUBS/BENCH-HUB")
HUB = "bench-hub"
PREFIX = "Microsoft.Devices."
START_TICKS = parse_ticks("2026-11-23T10:00:00Z")
TICKS_PER_MS = 10_000

# Share of each kind, per 1000 events.
JSON_TELEMETRY = 900
BASE64_TELEMETRY = 50
CONNECTION = 40  # connected / disconnected
LIFECYCLE = 10  # created, and now and then deleted

_AUTH = '{"scope":"device","type":"sas","issuer":"iothub","acceptingIpFilterRule":null}'
_STATUSES = ("ok", "ok", "ok", "warming", "degraded")
_FIRMWARE = ("1.4.2", "1.4.3", "2.0.0-rc1")


@dataclass(frozen=True, slots=True)
class Mix:
    """How many events of each kind the stream holds (the bench prints it so the mix is checkable)."""

    json_telemetry: int = 0
    base64_telemetry: int = 0
    connection: int = 0
    lifecycle: int = 0


class Workload:
    """``batches(n, size)`` yields lists of encoded events; the same seed gives the same bytes."""

    def __init__(self, devices: int = 100, seed: int = 42) -> None:
        if devices < 1:
            raise ValueError("devices must be at least 1")
        self.devices = devices
        self._rng = random.Random(seed)
        self._ticks = START_TICKS
        self._sequence = [0] * devices
        self._version = [1] * devices
        self._counts = {"json": 0, "base64": 0, "connection": 0, "lifecycle": 0}

    @property
    def mix(self) -> Mix:
        c = self._counts
        return Mix(c["json"], c["base64"], c["connection"], c["lifecycle"])

    def batches(self, events: int, size: int) -> Iterator[list[bytes]]:
        left = events
        while left > 0:
            n = min(size, left)
            yield [self.next_event() for _ in range(n)]
            left -= n

    def stream(self, events: int) -> Iterator[bytes]:
        for _ in range(events):
            yield self.next_event()

    def next_event(self) -> bytes:
        rng = self._rng
        self._ticks += rng.randint(1, 6) * TICKS_PER_MS
        index = rng.randrange(self.devices)
        device = f"bench-device-{index:05d}"
        roll = rng.randrange(1000)
        event: dict[str, Any]
        if roll < JSON_TELEMETRY:
            self._counts["json"] += 1
            event = self._telemetry(device, base64_body=False)
        elif roll < JSON_TELEMETRY + BASE64_TELEMETRY:
            self._counts["base64"] += 1
            event = self._telemetry(device, base64_body=True)
        elif roll < JSON_TELEMETRY + BASE64_TELEMETRY + CONNECTION:
            self._counts["connection"] += 1
            event = self._connection(device, index)
        else:
            self._counts["lifecycle"] += 1
            event = self._lifecycle(device, index)
        return orjson.dumps(event)

    # ---- shapes ---------------------------------------------------------------------------------------------
    def _id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _envelope(self, event_type: str, device: str, data: dict[str, Any], data_version: str) -> dict[str, Any]:
        return {"id": self._id(), "topic": TOPIC, "subject": f"devices/{device}", "eventType": PREFIX + event_type,
                "eventTime": ticks_to_iso(self._ticks), "data": data, "dataVersion": data_version,
                "metadataVersion": "1"}

    def _body(self) -> dict[str, Any]:
        rng = self._rng
        body: dict[str, Any] = {
            "temperature": round(rng.uniform(15.0, 35.0), 2),
            "humidity": round(rng.uniform(20.0, 80.0), 1),
        }
        # Not every device reports every field every time.
        if rng.random() < 0.7:
            body["pressure"] = round(rng.uniform(980.0, 1040.0), 1)
        if rng.random() < 0.5:
            body["batteryLevel"] = round(rng.uniform(5.0, 100.0), 1)
        if rng.random() < 0.4:
            body["co2"] = float(rng.randint(380, 1500))
        if rng.random() < 0.3:
            body["vibration"] = round(rng.uniform(0.0, 3.0), 3)
        if rng.random() < 0.2:
            body["status"] = rng.choice(_STATUSES)
        if rng.random() < 0.05:
            body["firmwareVersion"] = rng.choice(_FIRMWARE)
        body["online"] = True
        # Fields the twin's model does not declare (the mapper drops them), as real payloads carry.
        body["messageCount"] = rng.randint(1, 10_000_000)
        body["location"] = {"lat": round(rng.uniform(-60, 60), 5), "lon": round(rng.uniform(-180, 180), 5)}
        if rng.random() < 0.5:
            body["samples"] = [round(rng.uniform(0, 1), 3) for _ in range(rng.randint(3, 12))]
        return body

    def _telemetry(self, device: str, *, base64_body: bool) -> dict[str, Any]:
        rng = self._rng
        enqueued = self._ticks - rng.randint(0, 3) * TICKS_PER_MS  # the odd event overtakes another
        sysprops = {"iothub-connection-device-id": device, "iothub-connection-auth-method": _AUTH,
                    "iothub-connection-auth-generation-id": str(636775960478541711 + rng.randrange(1000)),
                    "iothub-enqueuedtime": ticks_to_iso(enqueued)[:-5] + "Z", "iothub-message-source": "Telemetry"}
        body = self._body()
        payload: Any = body
        if base64_body:
            payload = base64.b64encode(orjson.dumps(body)).decode()
        else:
            sysprops["iothub-content-type"] = "application/json"
            sysprops["iothub-content-encoding"] = "utf-8"
        properties = {"alert": "true"} if rng.random() < 0.1 else {}
        data = {"properties": properties, "systemProperties": sysprops, "body": payload}
        event = self._envelope("DeviceTelemetry", device, data, "")
        # IoT Hub's documented telemetry sample carries the enqueued time as the event's time, the same text.
        event["eventTime"] = sysprops["iothub-enqueuedtime"]
        return event

    def _connection(self, device: str, index: int) -> dict[str, Any]:
        self._sequence[index] += 1
        connected = self._rng.random() < 0.6
        data = {"deviceConnectionStateEventInfo": {"sequenceNumber": f"{self._sequence[index]:064X}"},
                "hubName": HUB, "deviceId": device, "moduleId": ""}
        return self._envelope("DeviceConnected" if connected else "DeviceDisconnected", device, data, "1")

    def _lifecycle(self, device: str, index: int) -> dict[str, Any]:
        created = self._rng.random() < 0.8
        self._version[index] += 1
        when = ticks_to_iso(self._ticks)
        twin = {"deviceId": device, "etag": "AAAAAAAAAAE=", "deviceEtag": "null", "status": "enabled",
                "statusUpdateTime": "0001-01-01T00:00:00", "connectionState": "Disconnected",
                "lastActivityTime": "0001-01-01T00:00:00", "cloudToDeviceMessageCount": 0,
                "authenticationType": "sas", "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
                "version": self._version[index],
                "properties": {"desired": {"$metadata": {"$lastUpdated": when}, "$version": 1},
                               "reported": {"$metadata": {"$lastUpdated": when}, "$version": 1}}}
        data = {"twin": twin, "hubName": HUB, "deviceId": device}
        return self._envelope("DeviceCreated" if created else "DeviceDeleted", device, data, "1")
