"""A fleet of simulated IoT Hub devices producing the events IoT Hub publishes to Event Grid.

Each device starts with ``DeviceCreated``, connects, sends telemetry, and now and then drops its connection and comes
back (``DeviceDisconnected``/``DeviceConnected`` with increasing 64-hex-digit sequence numbers). Telemetry bodies use
fields the default model declares (temperature, humidity, batteryLevel, …) plus one it does not (``rssi``); most
bodies are JSON with ``contentType=application/json``/``contentEncoding=utf-8``, some arrive base64-encoded because
the device did not set them, and message enrichments appear as application properties. With ``faulty`` > 0 a few
devices send bodies that are not JSON at all (the app quarantines those).

Deterministic for a given seed and clock: ids, values and choices all come from one ``random.Random``.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from azure.eventgrid import EventGridEvent, SystemEventNames

HUB = "sim-hub"
TOPIC = ("/SUBSCRIPTIONS/5B1E2C3D-0000-4000-8000-0000000000AA/RESOURCEGROUPS/TWINBRIDGE-SIM"
         "/PROVIDERS/MICROSOFT.DEVICES/IOTHUBS/SIM-HUB")
# Telemetry fields the default model (dtmi:twinbridge:IoTDevice;1) declares; anything else is ignored by the app.
MODEL_FIELDS = frozenset({"temperature", "humidity", "pressure", "batteryLevel", "co2", "vibration", "status",
                          "firmwareVersion", "online"})
BUILDINGS = ("B1", "B2", "B3", "HQ")


@dataclass(frozen=True, slots=True)
class Effect:
    """What one event says about its device, for the expected twins (see ``expect``)."""

    device_id: str
    kind: str  # created | connection | telemetry | faulty | deleted
    sequence: int = 0
    connected: bool = False
    enqueued: datetime | None = None
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Device:
    device_id: str
    building: str
    sequence: int
    device_type: str = "env-sensor"
    created: bool = False
    connected: bool = False
    temperature: float = 21.0
    humidity: float = 45.0
    battery: float = 100.0
    firmware: str = "1.0.0"
    last_enqueued: datetime | None = None
    retired: bool = False  # deleted from the hub: sends nothing more


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}0Z"


class Fleet:
    def __init__(self, devices: int, *, seed: int | None = None, faulty: float = 0.0, flap: float = 0.04,
                 base64_share: float = 0.15, clock: Callable[[], datetime] | None = None,
                 topic: str = TOPIC, hub: str = HUB, prefix: str = "sim") -> None:
        self.rng = random.Random(seed)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.topic, self.hub = topic, hub
        self.faulty, self.flap, self.base64_share = faulty, flap, base64_share
        self.devices = [Device(f"{prefix}-{i:04d}", self.rng.choice(BUILDINGS),
                               # Real IoT Hub sequence numbers are 64 hex digits with high-order parts set
                               # (Learn's sample is ~2**200): far beyond 64 bits, as every store must handle.
                               sequence=self.rng.randrange(1 << 192, 1 << 252),
                               device_type="test-bench" if i % 10 == 9 else "env-sensor",
                               temperature=round(self.rng.uniform(18, 26), 2),
                               humidity=round(self.rng.uniform(30, 60), 2),
                               battery=round(self.rng.uniform(60, 100), 1)) for i in range(devices)]
        self.effects: dict[str, Effect] = {}
        self.generated = 0

    def _id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def next_event(self) -> EventGridEvent:
        """One event from one device (devices not yet created go first, in order)."""
        pending = next((d for d in self.devices if not d.created), None)
        device = pending or self.rng.choice([d for d in self.devices if not d.retired])
        self.generated += 1
        if not device.created:
            return self._created(device)
        if not device.connected:
            return self._connection(device, True)
        if self.rng.random() < self.flap:
            return self._connection(device, False)
        return self._telemetry(device)

    def events(self, count: int) -> list[EventGridEvent]:
        return [self.next_event() for _ in range(count)]

    def retire(self, count: int) -> list[EventGridEvent]:
        """``DeviceDeleted`` for ``count`` devices (chosen by the seed), which then send nothing more.

        The deletion is stamped after everything the device sent, as IoT Hub would: whatever of it arrives late
        (chaos reorders) is older than the deletion and must not bring the twin back."""
        live = [d for d in self.devices if d.created and not d.retired]
        events = []
        for device in self.rng.sample(live, min(count, max(0, len(live) - 1))):
            device.retired = True
            moment = self.clock()
            if device.last_enqueued is not None and moment <= device.last_enqueued:
                moment = device.last_enqueued + timedelta(milliseconds=1)
            twin = {"deviceId": device.device_id, "etag": "AAAAAAAAAAI=", "deviceEtag": "null", "status": "enabled",
                    "connectionState": "Disconnected", "version": 3}
            event = self._event(device, SystemEventNames.IotHubDeviceDeletedEventName,
                                {"twin": twin, "hubName": self.hub, "deviceId": device.device_id},
                                Effect(device.device_id, "deleted"))
            event.event_time = moment
            events.append(event)
            self.generated += 1
        return events

    def _event(self, device: Device, name: str, data: dict[str, Any], effect: Effect,
               data_version: str = "1") -> EventGridEvent:
        event_id = self._id()
        self.effects[event_id] = effect
        return EventGridEvent(subject=f"devices/{device.device_id}", event_type=name, data=data,
                              data_version=data_version, topic=self.topic, id=event_id, event_time=self.clock())

    def _created(self, device: Device) -> EventGridEvent:
        device.created = True
        now = _iso(self.clock())
        twin = {"deviceId": device.device_id, "etag": "AAAAAAAAAAE=", "deviceEtag": "null", "status": "enabled",
                "statusUpdateTime": "0001-01-01T00:00:00", "connectionState": "Disconnected",
                "lastActivityTime": "0001-01-01T00:00:00", "cloudToDeviceMessageCount": 0,
                "authenticationType": "sas", "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None},
                "version": 2, "properties": {"desired": {"$metadata": {"$lastUpdated": now}, "$version": 1},
                                             "reported": {"$metadata": {"$lastUpdated": now}, "$version": 1}}}
        return self._event(device, SystemEventNames.IotHubDeviceCreatedEventName,
                           {"twin": twin, "hubName": self.hub, "deviceId": device.device_id},
                           Effect(device.device_id, "created"))

    def _connection(self, device: Device, connected: bool) -> EventGridEvent:
        device.connected = connected
        device.sequence += self.rng.randint(1, 3)  # IoT Hub's numbers grow but are not contiguous per device
        name = (SystemEventNames.IotHubDeviceConnectedEventName if connected
                else SystemEventNames.IotHubDeviceDisconnectedEventName)
        data = {"deviceConnectionStateEventInfo": {"sequenceNumber": f"{device.sequence:064X}"},
                "hubName": self.hub, "deviceId": device.device_id, "moduleId": ""}
        return self._event(device, name, data, Effect(device.device_id, "connection", device.sequence, connected))

    def _telemetry(self, device: Device) -> EventGridEvent:
        rng = self.rng
        enqueued = self.clock()
        enqueued = enqueued.replace(microsecond=enqueued.microsecond // 1000 * 1000)  # IoT Hub stamps milliseconds
        if device.last_enqueued is not None and enqueued <= device.last_enqueued:
            enqueued = device.last_enqueued + timedelta(milliseconds=1)  # one device's messages never tie
        device.last_enqueued = enqueued
        sysprops = {"iothub-connection-device-id": device.device_id,
                    "iothub-connection-auth-method": '{"scope":"device","type":"sas","issuer":"iothub",'
                                                     '"acceptingIpFilterRule":null}',
                    "iothub-connection-auth-generation-id": str(637000000000000000 + rng.randrange(10**12)),
                    "iothub-enqueuedtime": enqueued.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                    "iothub-message-source": "Telemetry"}
        body = self._body(device)
        alert = body.get("temperature", 0) > 28 or body.get("batteryLevel", 100) < 15
        properties = {"building": device.building, "deviceType": device.device_type,
                      "alert": "true" if alert else "false"}
        roll = rng.random()
        effect_values = {k: v for k, v in body.items() if k in MODEL_FIELDS}
        kind = "telemetry"
        payload: Any
        if roll < self.faulty:
            payload = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(24)) + b"\xff").decode()
            kind, effect_values = "faulty", {}  # a binary frame the app cannot read: quarantined BODY_NOT_JSON
        elif roll < self.faulty + self.base64_share:
            payload = base64.b64encode(orjson.dumps(body)).decode()  # the device forgot the content type
        else:
            payload = body
            sysprops["iothub-content-type"] = "application/json"
            sysprops["iothub-content-encoding"] = "utf-8"
        data = {"properties": properties, "systemProperties": sysprops, "body": payload}
        effect = Effect(device.device_id, kind, enqueued=enqueued, values=effect_values)
        return self._event(device, SystemEventNames.IotHubDeviceTelemetryEventName, data, effect, data_version="")

    def _body(self, device: Device) -> dict[str, Any]:
        rng = self.rng
        device.temperature = round(min(35.0, max(10.0, device.temperature + rng.gauss(0, 0.4))), 2)
        device.humidity = round(min(95.0, max(5.0, device.humidity + rng.gauss(0, 0.8))), 2)
        device.battery = round(max(0.0, device.battery - rng.uniform(0, 0.3)), 1)
        shape = rng.random()
        if shape < 0.6:
            body: dict[str, Any] = {"temperature": device.temperature, "humidity": device.humidity,
                                    "pressure": round(rng.uniform(990, 1030), 1), "rssi": rng.randint(-90, -40)}
        elif shape < 0.85:
            body = {"batteryLevel": device.battery, "online": True, "co2": round(rng.uniform(380, 1200), 0)}
        else:
            if rng.random() < 0.3:
                device.firmware = f"1.{rng.randint(0, 4)}.{rng.randint(0, 9)}"
            body = {"status": "ok" if device.battery > 20 else "low-battery", "firmwareVersion": device.firmware,
                    "vibration": round(rng.uniform(0, 2), 3)}
        return body
