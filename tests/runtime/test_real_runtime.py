"""The whole app through the real Functions Python execution runtime (azure-functions-runtime, Python 3.13).

The runtime's five verbs are driven as the host's proxy worker drives them (twinbridge/localhost/real_runtime.py):
init (imports function_app and indexes it with the runtime's own checks) → metadata (the binding JSON the host
would read) → load → invocation requests shaped as the host sends them → environment reload. Every door is invoked
and must do what its own tests say. Runs in its own venv (`make runtime-test`, part of `make test`); elsewhere it
skips, unless TWINBRIDGE_REQUIRE_REAL_RUNTIME=1 (CI) makes a missing runtime a failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.local_host import skip_without_real_runtime
from twinbridge.localhost import real_runtime

skip_without_real_runtime()

from functions.runtime import use_app  # noqa: E402  (after the skip: only where the runtime exists)
from shared.settings.doors import DoorSettings  # noqa: E402
from shared.settings.environment import Settings  # noqa: E402
from shared.wiring import build_app  # noqa: E402
from tests.egress import adt  # noqa: E402
from tests.functions.helpers import user_twins  # noqa: E402
from tests.support import documented as corpus  # noqa: E402
from tests.support import event_factory as factory  # noqa: E402
from tests.support.rig import make_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HUB = factory.TOPIC

# What each function must declare to the host: every binding's JSON as function.json would hold it. Written from
# the decorators' intent (docs/doors.md), so a change to a binding is a visible change here. Enum values are
# upper-case (MANY, BINARY) as the library writes them; the host reads them case-insensitively.
EXPECTED_BINDINGS: dict[str, list[dict[str, Any]]] = {
    "collect_dead_letters": [
        {"type": "timerTrigger", "direction": "IN", "name": "timer", "schedule": "0 */5 * * * *",
         "runOnStartup": False, "useMonitor": True},
    ],
    "eventgrid_webhook": [
        {"type": "httpTrigger", "direction": "IN", "name": "req", "authLevel": "FUNCTION", "route": "eventgrid",
         "methods": ["POST", "OPTIONS"]},
        {"type": "http", "direction": "OUT", "name": "$return"},
    ],
    "ingest_iothub_events": [{"type": "eventGridTrigger", "direction": "IN", "name": "event"}],
    "ingest_iothub_stream": [
        {"type": "eventHubTrigger", "direction": "IN", "name": "events", "connection": "IOTHUB_EVENTS_CONNECTION",
         "eventHubName": "%IOTHUB_EVENTS_NAME%", "cardinality": "MANY", "dataType": "BINARY",
         "consumerGroup": "%IOTHUB_EVENTS_CONSUMER_GROUP%"},
    ],
    "reconcile_registry": [
        {"type": "timerTrigger", "direction": "IN", "name": "timer", "schedule": "%RECONCILE_SCHEDULE%",
         "runOnStartup": False, "useMonitor": True},
    ],
    "route_twin_changes": [{"type": "eventGridTrigger", "direction": "IN", "name": "event"}],
    "route_twin_changes_eventhub": [
        {"type": "eventHubTrigger", "direction": "IN", "name": "events", "connection": "TWINBRIDGE_EGRESS_SOURCE",
         "eventHubName": "%TWINBRIDGE_EGRESS_SOURCE_HUB%", "cardinality": "MANY", "dataType": "BINARY",
         "consumerGroup": "%TWINBRIDGE_EGRESS_SOURCE_CONSUMER_GROUP%"},
    ],
}


@pytest.fixture(scope="module")
def rt() -> Iterator[real_runtime.RealRuntime]:
    """One runtime for the module (it keeps process-wide state, as in the worker): init → metadata → load all."""
    runtime = real_runtime.RealRuntime(ROOT)
    runtime.start()
    yield runtime
    runtime.close()


@pytest.fixture
def app() -> Iterator[Any]:
    """The process-wide app the doors use, in memory; the runtime calls the very same door modules."""
    application = make_app(doors=DoorSettings(iothub_resource_id=HUB, stream_chunk_events=8))
    use_app(application)
    yield application
    use_app(None)


def test_versions_are_the_3_13_stack() -> None:
    import importlib.metadata as md

    assert sys.version_info[:2] >= (3, 13)
    assert md.version("azure-functions").startswith("2.")
    assert md.version("azure-functions-runtime") == "1.3.0"


def test_every_function_indexes_with_its_binding_json(rt: real_runtime.RealRuntime) -> None:
    assert sorted(rt.functions) == sorted(EXPECTED_BINDINGS)
    for name, meta in rt.functions.items():
        assert real_runtime.binding_json(meta) == EXPECTED_BINDINGS[name], name
        assert meta.properties["worker_indexed"] == "True"
    stream = rt.functions["ingest_iothub_stream"]
    assert stream.bindings["events"].data_type == rt.pb.BindingInfo.binary
    assert stream.retry_options.max_retry_count == -1
    assert stream.retry_options.minimum_interval.ToSeconds() == 5
    assert stream.retry_options.maximum_interval.ToSeconds() == 300


# --- Event Grid trigger: both schemas -------------------------------------------------------------------------

def test_event_grid_trigger_event_grid_schema(rt: real_runtime.RealRuntime, app: Any) -> None:
    event = factory.lifecycle("dev-eg", second=1)
    result = rt.invoke("ingest_iothub_events", {"event": rt.json(event)})
    assert result.ok, result.error
    assert "dev-eg" in user_twins(app.twins)


def test_event_grid_trigger_cloudevents_schema(rt: real_runtime.RealRuntime, app: Any) -> None:
    rt.invoke("ingest_iothub_events", {"event": rt.json(factory.lifecycle("dev-ce", second=1))})
    telemetry = factory.to_cloudevent(factory.telemetry("dev-ce", {"temperature": 21.5}, second=2))
    result = rt.invoke("ingest_iothub_events", {"event": rt.json(telemetry)})
    assert result.ok, result.error
    assert user_twins(app.twins)["dev-ce"]["temperature"] == 21.5


def test_event_grid_trigger_quarantines_a_bad_event_and_succeeds(rt: real_runtime.RealRuntime, app: Any) -> None:
    bad = {**factory.lifecycle("dev-bad"), "topic": "/subscriptions/other/hub"}
    result = rt.invoke("ingest_iothub_events", {"event": rt.json(bad)})
    assert result.ok, result.error
    assert [r.code for r in list(app.quarantine)] == ["TOPIC_NOT_ALLOWED"]


# --- HTTP webhook ---------------------------------------------------------------------------------------------

URL = "http://localhost:7071/api/eventgrid"


def _reply(result: real_runtime.Invocation) -> tuple[int, dict[str, str], Any]:
    assert result.ok, result.error
    http = result.return_value
    return http["status"], http["headers"], orjson.loads(http["body"]) if http["body"] else None


def test_webhook_validation_handshake(rt: real_runtime.RealRuntime, app: Any) -> None:
    event = {"id": "2d1781af", "topic": "/subscriptions/x", "subject": "", "eventTime": "2026-11-23T10:00:00Z",
             "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "dataVersion": "2",
             "data": {"validationCode": "CODE-123", "validationUrl": "https://rp.eventgrid.azure.net/x"}}
    request = rt.http("POST", URL, {"aeg-event-type": "SubscriptionValidation",
                                    "content-type": "application/json"}, orjson.dumps([event]))
    status, _, body = _reply(rt.invoke("eventgrid_webhook", {"req": request}))
    assert (status, body) == (200, {"validationResponse": "CODE-123"})


def test_webhook_options(rt: real_runtime.RealRuntime, app: Any) -> None:
    request = rt.http("OPTIONS", URL, {"webhook-request-origin": "eventgrid.azure.net"})
    status, headers, _ = _reply(rt.invoke("eventgrid_webhook", {"req": request}))
    assert status == 200
    assert {k.lower(): v for k, v in headers.items()}["webhook-allowed-origin"] == "eventgrid.azure.net"


def test_webhook_batch(rt: real_runtime.RealRuntime, app: Any) -> None:
    events = [factory.lifecycle("dev-wh", second=1), factory.telemetry("dev-wh", {"temperature": 19.0}, second=2),
              {**factory.lifecycle("dev-x"), "topic": "/subscriptions/other/hub"}]
    request = rt.http("POST", URL, {"aeg-event-type": "Notification", "content-type": "application/json"},
                      orjson.dumps(events))
    status, _, body = _reply(rt.invoke("eventgrid_webhook", {"req": request}))
    assert status == 200, body
    assert user_twins(app.twins)["dev-wh"]["temperature"] == 19.0
    assert [r.code for r in list(app.quarantine)] == ["TOPIC_NOT_ALLOWED"]


# --- Every documented sample event, through the runtime (tests/events/documented, sources in its README) --------

@pytest.mark.parametrize("door", ["ingest_iothub_events", "eventgrid_webhook"])
@pytest.mark.parametrize(("schema", "name"), corpus.SAMPLES)
def test_every_documented_sample_through_the_runtime(rt: real_runtime.RealRuntime, door: str, schema: str,
                                                     name: str) -> None:
    """Microsoft's samples as delivered: the JSON text the host hands the trigger, or a webhook POST of the array.
    The connection sample carries the documented 64-hex-digit sequence number."""
    application = make_app(doors=DoorSettings(iothub_resource_id=corpus.DOC_TOPIC),
                           config={"topics": [corpus.DOC_TOPIC]})
    use_app(application)
    try:
        event = corpus.sample(schema, name)
        if door == "ingest_iothub_events":
            result = rt.invoke(door, {"event": rt.json(event)})
            assert result.ok, result.error
        else:
            request = rt.http("POST", URL, {"aeg-event-type": "Notification", "content-type": "application/json"},
                              orjson.dumps([event]))
            status, _, body = _reply(rt.invoke(door, {"req": request}))
            assert status == 200, body
        corpus.check(application, name)
    finally:
        use_app(None)


# --- Timer -----------------------------------------------------------------------------------------------------

def test_timer_runs_the_reconcile(rt: real_runtime.RealRuntime, app: Any) -> None:
    import responses

    from shared.adapters.registry.iothub import IotHubRegistry
    from tests.support.fake_registry import CONNECTION_STRING, FakeRegistry

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        FakeRegistry(mock).add("dev-reg", model_id="dtmi:acme:Pump;1")
        app.registry = IotHubRegistry.from_settings(None, CONNECTION_STRING)  # the App's cached registry
        timer = {"Schedule": {"AdjustForDST": True}, "ScheduleStatus": {
                 "Last": "2026-11-23T10:00:00Z", "Next": "2026-11-23T10:15:00Z",
                 "LastUpdated": "2026-11-23T10:00:00Z"}, "IsPastDue": True}
        result = rt.invoke("reconcile_registry", {"timer": rt.json(timer)})
    assert result.ok, result.error
    assert "dev-reg" in user_twins(app.twins)


def test_timer_collects_dead_letters_into_the_quarantine(rt: real_runtime.RealRuntime, app: Any,
                                                          tmp_path: Path) -> None:
    """collect_dead_letters through the runtime: a dead-letter blob (Event Grid's format: the event as published
    plus deadLetterReason/deliveryAttempts/...) becomes a DEAD_LETTERED record, and the blob is removed."""
    from shared.doors.dead_letters import FolderDeadLetters

    event = factory.connection("dev-dl", 1)
    (tmp_path / "SUB").mkdir()
    blob = tmp_path / "SUB" / "one.json"
    blob.write_bytes(orjson.dumps([{**event, "deadLetterReason": "MaxDeliveryAttemptsExceeded",
                                    "deliveryAttempts": 30, "lastDeliveryOutcome": "Probation"}]))
    app.dead_letters = FolderDeadLetters(tmp_path)
    timer = {"Schedule": {"AdjustForDST": True}, "IsPastDue": False}
    result = rt.invoke("collect_dead_letters", {"timer": rt.json(timer)})
    assert result.ok, result.error
    records = list(app.quarantine)
    assert [r.code for r in records] == ["DEAD_LETTERED"] and records[0].event == event
    assert not blob.exists()


# --- Event Hubs: cardinality many, IoT Hub system properties, a binary body -------------------------------------

def _stream_batch(rt: real_runtime.RealRuntime, bodies: list[bytes], systems: list[dict[str, Any]],
                  properties: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """dataType binary + cardinality many: the host sends collection_bytes and the per-message arrays."""
    sys_array = [{**s, "SequenceNumber": 1000 + i, "Offset": str(4096 * i), "PartitionKey": None,
                  "EnqueuedTimeUtc": f"2026-11-23T10:00:0{i}Z"} for i, s in enumerate(systems)]
    metadata = {
        "SystemPropertiesArray": rt.json(sys_array),
        "PropertiesArray": rt.json(properties),
        "PartitionContext": rt.json({"PartitionId": "3", "EventHubName": "hub", "ConsumerGroup": "twinbridge"}),
    }
    return {"events": rt.collection_bytes(bodies)}, metadata


def _device_system(device: str, source: str = "Telemetry", **extra: str) -> dict[str, Any]:
    return {"iothub-connection-device-id": device, "iothub-message-source": source,
            "iothub-enqueuedtime": "2026-11-23T10:00:05.000000Z",
            "iothub-connection-auth-method": '{"scope":"device","type":"sas"}', **extra}


def test_event_hubs_batch_with_iothub_system_properties_and_a_binary_body(rt: real_runtime.RealRuntime,
                                                                           app: Any) -> None:
    twin = {"deviceId": "dev-eh", "etag": "AAAAAAAAAAE=", "version": 2,
            "properties": {"desired": {"$metadata": {"$lastUpdated": "0001-01-01T00:00:00Z"}, "$version": 1}}}
    lifecycle_props = {"hubName": factory.HUB, "deviceId": "dev-eh",
                       "iothub-message-schema": "deviceLifecycleNotification", "opType": "createDeviceIdentity",
                       "operationTimestamp": "2026-11-23T10:00:01.000000Z"}
    binary = b"\x00\xff\xfe not json, not even UTF-8 \x80"
    inputs, metadata = _stream_batch(
        rt,
        [orjson.dumps(twin), orjson.dumps({"temperature": 23.5}), binary],
        [_device_system("dev-eh", "deviceLifecycleEvents"),
         _device_system("dev-eh", **{"content-type": "application/json", "content-encoding": "utf-8"}),
         _device_system("dev-eh", **{"content-type": "application/json", "content-encoding": "utf-8"})],
        [lifecycle_props, {}, {}])
    result = rt.invoke("ingest_iothub_stream", inputs, metadata)
    assert result.ok, result.error
    assert user_twins(app.twins)["dev-eh"]["temperature"] == 23.5
    # The binary body reached the code (so the batch did not stall) and was quarantined, not dropped.
    [record] = list(app.quarantine)
    assert record.code in {"BODY_NOT_JSON", "SCHEMA_INVALID", "BODY_UNDECODABLE"}, record.code


def test_event_hubs_transient_failure_fails_the_invocation(rt: real_runtime.RealRuntime, app: Any,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.errors import Code, TransientError

    def down(*_args: Any, **_kwargs: Any) -> Any:
        raise TransientError(Code.ADT_UNAVAILABLE, "twins unavailable")

    monkeypatch.setattr(app.pipeline, "process", down)
    inputs, metadata = _stream_batch(rt, [orjson.dumps({"temperature": 1.0})],
                                     [_device_system("dev-t", **{"content-type": "application/json"})], [{}])
    result = rt.invoke("ingest_iothub_stream", inputs, metadata)
    assert not result.ok  # the host's retry policy then runs the batch again
    assert "twins unavailable" in result.error


# --- Egress doors -----------------------------------------------------------------------------------------------

@pytest.fixture
def egress_app(tmp_path: Path) -> Iterator[Path]:
    import yaml

    config = {"endpoints": {"local": {"kind": "file", "path": str(tmp_path / "egress.jsonl")}},
              "routes": [{"name": "updates", "filter": "type = 'Microsoft.DigitalTwins.Twin.Update'",
                          "endpoint": "local", "transform": "property-changes"}]}
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(config))
    use_app(build_app(Settings(config_path=str(path), quarantine_file=str(tmp_path / "q.jsonl"))))
    yield tmp_path
    use_app(None)


def _sent(folder: Path) -> list[str]:
    path = folder / "egress.jsonl"
    return [orjson.loads(line)["message_id"] for line in path.read_bytes().splitlines()] if path.exists() else []


def test_egress_event_grid_door_both_schemas(rt: real_runtime.RealRuntime, egress_app: Path) -> None:
    first = adt.twin_update("room-1", [adt.replace("/Temperature", 21.5)], nid="n1")
    second = adt.twin_update("room-2", [adt.replace("/Temperature", 22.5)], nid="n2")
    for event in (adt.to_eventgrid(first), second):  # Event Grid schema, then CloudEvents
        result = rt.invoke("route_twin_changes", {"event": rt.json(event)})
        assert result.ok, result.error
    assert _sent(egress_app) == ["n1:updates:0", "n2:updates:0"]


def test_egress_event_hubs_door_cloudevents_amqp_binding(rt: real_runtime.RealRuntime, egress_app: Path) -> None:
    events = [adt.twin_update("room-1", [adt.replace("/T", 1)], nid="e1"),
              adt.twin_update("room-2", [adt.replace("/T", 2)], nid="e2")]
    pairs = [adt.to_amqp(events[0], "cloudEvents:"), adt.to_amqp(events[1], "cloudEvents_")]
    metadata = {"PropertiesArray": rt.json([p for p, _ in pairs]),
                "SystemPropertiesArray": rt.json([{"SequenceNumber": i} for i in range(2)])}
    result = rt.invoke("route_twin_changes_eventhub", {"events": rt.collection_bytes([b for _, b in pairs])}, metadata)
    assert result.ok, result.error
    assert _sent(egress_app) == ["e1:updates:0", "e2:updates:0"]


# --- Environment reload -----------------------------------------------------------------------------------------

PLACEHOLDER = """
import sys, tempfile
from pathlib import Path
from twinbridge.localhost.real_runtime import RealRuntime
from tests.support import event_factory as factory
from functions.runtime import use_app
from tests.support.rig import make_app
from tests.functions.helpers import user_twins

root = Path(sys.argv[1])
with tempfile.TemporaryDirectory() as placeholder:
    rt = RealRuntime(Path(placeholder))   # the placeholder: init finds no function_app.py there
    rt.init()
    assert rt.metadata() == {}, "a placeholder has no functions"
    rt.app_dir = root
    rt.reload({"PATH": "/usr/bin:/bin"})   # specialization to the real app
    functions = rt.metadata()
    for name in functions:
        rt.load(name)
    app = make_app()
    use_app(app)
    result = rt.invoke("ingest_iothub_events", {"event": rt.json(factory.lifecycle("dev-rl", second=1))})
    assert result.ok, result.error
    assert "dev-rl" in user_twins(app.twins)
    print(len(functions))
"""


def test_environment_reload_specialises_a_placeholder_to_the_app() -> None:
    """Linux Consumption / Flex placeholder mode: init on an empty placeholder, then the environment reload loads
    the app (a fresh process: the runtime keeps its function registry process-wide, as the worker does)."""
    run = subprocess.run([sys.executable, "-c", PLACEHOLDER, str(ROOT)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env=dict(os.environ))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == str(len(EXPECTED_BINDINGS))


def test_binding_json_is_what_the_report_prints(rt: real_runtime.RealRuntime) -> None:
    """Prints the binding JSON (pytest -s) for the record; the assertions are in the indexing test above."""
    for name in sorted(rt.functions):
        print(name, json.dumps(real_runtime.binding_json(rt.functions[name])))
