"""Every documented sample event (tests/events/documented/, sources in its README) through every ingest door against
every state store (issue 15): the Event Grid trigger, the HTTP webhook and the Event Hubs door; memory and Table
Storage on Azurite. The connection sample carries Microsoft's 64-hex-digit sequence number, a 256-bit number."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from functions.eventgrid_webhook import handle
from functions.ingest_iothub_stream import ingest_iothub_stream
from shared.adapters.checkpoints.memory import MemoryCheckpoints
from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.state.table import TableStateStore
from shared.ports import StateStore
from shared.settings.app_config import AppConfig
from shared.settings.doors import DoorSettings
from shared.settings.environment import Settings
from shared.twins.pipeline import Pipeline
from shared.wiring import App, embedded_twin_store
from tests.functions.helpers import body_of, post, user_twins
from tests.functions.test_ingest_iothub_events import invoke
from tests.functions.test_ingest_iothub_stream import batch
from tests.support.azurite import memory_or_table
from tests.support.documented import DOC_TOPIC, EXPECTED, SAMPLES, check, sample
from tests.support.rig import CATALOG


@pytest.fixture(params=["memory", "table"])
def state(request: pytest.FixtureRequest) -> StateStore:
    return memory_or_table(request, MemoryStateStore, TableStateStore.from_connection_string)


@pytest.fixture
def app(state: StateStore, install: Any) -> App:
    config = AppConfig.from_data({"topics": [DOC_TOPIC]})
    graph = embedded_twin_store(CATALOG)
    quarantine = MemoryQuarantine()
    pipeline = Pipeline(config, graph, state, quarantine, catalog=CATALOG, max_concurrency=1)
    built = App(Settings(doors=DoorSettings(iothub_resource_id=DOC_TOPIC)), config, CATALOG, graph, state,
                quarantine, pipeline, MemoryCheckpoints())
    install(built)
    return built


def via_trigger(event: dict[str, Any]) -> None:
    invoke(orjson.dumps(event).decode())  # what the worker hands the door's str parameter


def via_webhook(event: dict[str, Any]) -> None:
    response = handle(post(orjson.dumps([event])))
    assert response.status_code == 200, body_of(response)


DOORS = {"trigger": via_trigger, "webhook": via_webhook}


@pytest.mark.parametrize("door", sorted(DOORS))
@pytest.mark.parametrize(("schema", "name"), SAMPLES)
def test_every_documented_sample_through_the_event_grid_doors(app: App, door: str, schema: str, name: str) -> None:
    event = sample(schema, name)
    DOORS[door](event)
    check(app, name)
    writes = app.pipeline.applier.writes
    DOORS[door](event)  # Event Grid delivers at least once: the same event again changes nothing
    assert app.pipeline.applier.writes == writes
    # the same record, overwritten: one per event and code
    assert len(list(app.quarantine)) == (1 if EXPECTED[name]["outcome"] == "quarantined" else 0)  # type: ignore[call-overload]


def as_stream_message(event: dict[str, Any]) -> dict[str, Any] | None:
    """The same IoT Hub event as the built-in Event Hubs endpoint carries it (iot-hub-non-telemetry-event-schema):
    the payload as the body, the routing fields as properties."""
    data = event["data"]
    kind = (event.get("eventType") or event.get("type", "")).rsplit(".", 1)[-1]
    when = event.get("eventTime") or event.get("time")
    if kind == "DeviceTelemetry":
        system = {("content-type" if k == "iothub-content-type" else "content-encoding" if k ==
                   "iothub-content-encoding" else k): v for k, v in data["systemProperties"].items()}
        return {"body": orjson.dumps(data["body"]), "system": system, "properties": data.get("properties", {})}
    if kind not in ("DeviceConnected", "DeviceCreated"):
        return None  # not an IoT Hub event: nothing like it comes out of an IoT Hub's endpoint
    common = {"hubName": data["hubName"], "deviceId": data["deviceId"], "operationTimestamp": when}
    system = {"iothub-connection-device-id": data["deviceId"], "iothub-enqueuedtime": when,
              "content-type": "application/json", "content-encoding": "utf-8"}
    if kind == "DeviceConnected":
        if data.get("moduleId"):
            common["moduleId"] = system["iothub-connection-module-id"] = data["moduleId"]
        return {"body": orjson.dumps(data["deviceConnectionStateEventInfo"]),
                "system": {**system, "iothub-message-source": "deviceConnectionStateEvents"},
                "properties": {**common, "opType": "deviceConnected",
                               "iothub-message-schema": "deviceConnectionStateNotification"}}
    return {"body": orjson.dumps(data["twin"]), "system": {**system, "iothub-message-source": "deviceLifecycleEvents"},
                "properties": {**common, "opType": "createDeviceIdentity",
                               "iothub-message-schema": "deviceLifecycleNotification"}}


@pytest.mark.parametrize("name", sorted(n for s, n in SAMPLES if s == "eventgrid"))
def test_every_documented_iot_hub_sample_through_the_event_hubs_door(app: App, name: str) -> None:
    message = as_stream_message(sample("eventgrid", name))
    if message is None:
        pytest.skip(f"{name} is not an IoT Hub event")
    ingest_iothub_stream(batch([message]))
    ingest_iothub_stream(batch([message]))  # redelivered: a duplicate
    assert list(app.quarantine) == []  # type: ignore[call-overload]
    twins = user_twins(app.twins)
    if name == "device_telemetry":
        # No subject on this door: the device is the one the message came from ("d1" in the sample); the body's
        # fields are not in the default model, so nothing is written and nothing is quarantined.
        assert "LogicAppTestDevice" not in twins
        return
    check(app, name)
