"""The Event Hubs door with func.EventHubEvent batches built by the library's own trigger converter."""

from __future__ import annotations

import json
import types
from typing import Any

import orjson
import pytest
from azure.functions.eventhub import EventHubTriggerConverter
from azure.functions.meta import Datum

from functions.ingest_iothub_stream import UNCONFIGURED_TOPIC, ingest_iothub_stream, process_messages, to_messages
from shared.errors import Code, TransientError
from shared.settings.doors import DoorSettings
from tests.functions.helpers import user_twins
from tests.support import event_factory as factory
from tests.support.rig import make_app

HUB = factory.TOPIC


def message(device: str, body: Any, *, source: str = "Telemetry", second: float = 0, content_type: str | None =
            "application/json", encoding: str | None = "utf-8", module: str | None = None,
            properties: dict[str, Any] | None = None) -> dict[str, Any]:
    system: dict[str, Any] = {"iothub-connection-device-id": device, "iothub-message-source": source,
                              "iothub-enqueuedtime": f"2026-11-23T10:00:{second:09.6f}Z",
                              "iothub-connection-auth-method": '{"scope":"device","type":"sas"}'}
    optional = {"iothub-connection-module-id": module, "content-type": content_type, "content-encoding": encoding}
    system.update({name: value for name, value in optional.items() if value})
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return {"body": raw, "system": system, "properties": properties or {}}


def connection(device: str, sequence: int, connected: bool, second: float) -> dict[str, Any]:
    props = {"hubName": factory.HUB, "deviceId": device, "iothub-message-schema": "deviceConnectionStateNotification",
             "opType": "deviceConnected" if connected else "deviceDisconnected",
             "operationTimestamp": f"2026-11-23T10:00:{second:09.6f}Z"}
    return message(device, {"sequenceNumber": f"{sequence:064X}"}, source="deviceConnectionStateEvents",
                   second=second + 0.1, properties=props)


def lifecycle(device: str, created: bool, second: float, module: str | None = None) -> dict[str, Any]:
    props = {"hubName": factory.HUB, "deviceId": device, "iothub-message-schema": "deviceLifecycleNotification",
             "opType": "createDeviceIdentity" if created else "deleteDeviceIdentity",
             "operationTimestamp": f"2026-11-23T10:00:{second:09.6f}Z"}
    if module:
        props["moduleId"] = module
    twin = {"deviceId": device, "etag": "AAAAAAAAAAE=", "version": 2,
            "properties": {"desired": {"$metadata": {"$lastUpdated": "0001-01-01T00:00:00Z"}, "$version": 1}}}
    return message(device, twin, source="deviceLifecycleEvents", second=second + 0.1, module=module, properties=props)


def batch(messages: list[dict[str, Any]], partition: str = "3", first_sequence: int = 1000) -> list:
    """Through EventHubTriggerConverter.decode, as the worker does for cardinality=many."""
    system = []
    for i, m in enumerate(messages):
        system.append({**m["system"], "SequenceNumber": first_sequence + i, "Offset": str(4096 * i),
                       "PartitionKey": None, "EnqueuedTimeUtc": m["system"]["iothub-enqueuedtime"],
                       "x-opt-sequence-number": first_sequence + i})
    metadata = {
        "SystemPropertiesArray": Datum(json.dumps(system), "json"),
        "PropertiesArray": Datum(json.dumps([m["properties"] for m in messages]), "json"),
        "PartitionContext": Datum(json.dumps({"PartitionId": partition, "EventHubName": "hub",
                                              "ConsumerGroup": "twinbridge"}), "json"),
    }
    data = Datum(types.SimpleNamespace(bytes=[m["body"] for m in messages]), "collection_bytes")
    return EventHubTriggerConverter.decode(data, trigger_metadata=metadata)


def stream_app(**kwargs: Any):
    doors = kwargs.pop("doors", None) or DoorSettings(iothub_resource_id=HUB, stream_chunk_events=8)
    return make_app(doors=doors, **kwargs)


def test_retry_policy_is_declared_on_the_function():
    settings = ingest_iothub_stream.build().get_settings_dict("retry_policy")
    assert settings["strategy"] == "exponential_backoff" and settings["max_retry_count"] == "-1"


def test_telemetry_json_base64_and_module_messages(install):
    app = stream_app()
    install(app)
    events = batch([
        message("d1", {"temperature": 21.5}, second=1),
        message("d1", {"temperature": 22.5, "humidity": 30.0}, second=2),
        message("d2", {"pressure": 1001.0}, content_type=None, encoding=None, second=1),  # base64 path
        message("d3", {"moduleStatus": "ok", "temperature": 3.0}, module="m1", second=1),
    ])
    ingest_iothub_stream(events)
    twins = user_twins(app.twins)
    assert twins["d1"] == {"$model": "dtmi:twinbridge:IoTDevice;1", "temperature": 22.5, "humidity": 30.0}
    assert twins["d2"]["pressure"] == 1001.0
    assert twins["d3~m1"] == {"$model": "dtmi:twinbridge:IoTModule;1", "moduleStatus": "ok", "temperature": 3.0}


def test_messages_become_events_with_stable_ids_and_the_hub_topic():
    events = batch([message("d1", {"temperature": 1.0}, second=1)], partition="7", first_sequence=42)
    (msg,) = to_messages(events)
    assert msg.partition == "7" and msg.sequence_number == 42
    from shared.doors.eventhub_messages import to_event

    event = to_event(msg, HUB)
    assert event["id"] == "eh-7-42" and event["topic"] == HUB and event["subject"] == "devices/d1"
    assert event["data"]["systemProperties"]["iothub-content-type"] == "application/json"
    assert event["data"]["body"] == {"temperature": 1.0}


def test_lifecycle_and_connection_messages(install):
    app = stream_app()
    install(app)
    ingest_iothub_stream(batch([
        lifecycle("d9", True, second=1),
        connection("d9", 7, connected=True, second=2),
        connection("d9", 6, connected=False, second=1.5),  # older sequence, delivered later: stale
        lifecycle("d9", True, second=3, module="edgeAgent"),  # module lifecycle: ignored
        message("d9", {"x": 1}, source="twinChangeEvents", second=4),  # not handled: ignored
    ]))
    assert user_twins(app.twins)["d9"] == {"$model": "dtmi:twinbridge:IoTDevice;1", "connectionState": "Connected"}
    ingest_iothub_stream(batch([lifecycle("d9", False, second=5)], first_sequence=2000))
    assert "d9" not in user_twins(app.twins)


def test_a_poison_message_in_the_middle_is_quarantined_and_the_rest_applied(install):
    app = stream_app()
    install(app)
    poison = message("d2", b"{not json", second=2)
    nameless = message("d3", {"temperature": 1.0}, second=2)
    del nameless["system"]["iothub-connection-device-id"]
    events = batch([message("d1", {"temperature": 1.0}, second=1), poison, nameless,
                    message("d4", {"temperature": 4.0}, second=3)])
    ingest_iothub_stream(events)
    assert sorted(user_twins(app.twins)) == ["d1", "d4"]
    records = sorted(app.quarantine, key=lambda r: r.code)
    assert [(r.code, r.problems[0]["path"]) for r in records] == [
        (Code.BODY_NOT_JSON, "data.body"), (Code.SCHEMA_INVALID, "systemProperties.iothub-connection-device-id")]
    # Enough kept to replay: the body bytes (base64) and the system properties.
    assert records[0].event["sequenceNumber"] == 1001 and records[0].event["body"]


def test_without_the_hub_resource_id_everything_is_quarantined_not_dropped(install):
    app = make_app(doors=DoorSettings())
    install(app)
    ingest_iothub_stream(batch([message("d1", {"temperature": 1.0})]))
    assert user_twins(app.twins) == {}
    (record,) = list(app.quarantine)
    assert record.code == Code.TOPIC_NOT_ALLOWED and UNCONFIGURED_TOPIC in record.message


def test_transient_failure_stops_at_that_chunk_raises_and_the_retry_converges(install, fake_adt, adt_store):
    app = make_app(twins=adt_store, doors=DoorSettings(iothub_resource_id=HUB, stream_chunk_events=4))
    install(app)
    messages = [message(f"d{i}", {"temperature": float(i)}, second=i) for i in range(12)]
    failing = {"n": 0}
    original = fake_adt._route

    def flaky(method, path, headers, body):
        if method == "PUT" and path == "/digitaltwins/d5":
            failing["n"] += 1
            if failing["n"] <= 3:  # one attempt + 2 retries: past the adapter's budget
                error = {"error": {"code": "TooManyRequests", "message": "slow"}}
                return 429, {"Retry-After": "0"}, orjson.dumps(error)
        return original(method, path, headers, body)

    fake_adt._route = flaky
    with pytest.raises(TransientError):
        ingest_iothub_stream(batch(messages))
    # Chunk 1 (d0-d3) done, chunk 2 (d4-d7) done except d5, chunk 3 (d8-d11) never attempted.
    assert sorted(user_twins(fake_adt.graph)) == ["d0", "d1", "d2", "d3", "d4", "d6", "d7"]

    writes_before = len(fake_adt.writes())
    totals = process_messages(to_messages(batch(messages)))  # the retry policy runs the same batch again
    assert set(user_twins(fake_adt.graph)) == {f"d{i}" for i in range(12)}
    assert len(fake_adt.writes()) - writes_before == 5  # d5 and d8-d11; nothing written twice
    # d5's shadow was committed before its twin write failed: a duplicate now, whose write is the repair.
    assert totals["duplicate"] == 8 and totals["applied"] == 4
