"""The Event Grid trigger door, called as the worker calls it: through azure.functions types and converters."""

import asyncio
import datetime

import azure.functions as func
import orjson
import pytest
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.meta import Datum

import function_app
from functions import runtime
from functions._bindings import to_plain_event
from functions.ingest_iothub_events import ingest_iothub_events
from shared.errors import Code, TransientError
from shared.wiring import App
from tests.support import event_factory as factory
from tests.support.fixtures import SAMPLE_NAMES, load_event
from tests.support.rig import rig
from twinbridge.localhost.runtime import indexed

# FunctionApp.get_functions() may run once per app and process: share the local host's index.
FUNCTIONS = indexed(function_app.app)


@pytest.fixture
def installed():
    r = rig()
    runtime.use_app(App(None, r.pipeline.config, r.pipeline.catalog, r.twins, r.state, r.quarantine, r.pipeline))
    yield r
    runtime.use_app(None)


def invoke(event):
    """One invocation, as the worker runs an ``async def`` function (awaited on an event loop)."""
    return asyncio.run(ingest_iothub_events(event))


def converted(raw):
    """What the Python worker hands the function for this JSON payload."""
    return EventGridEventInConverter.decode(Datum(type="json", value=orjson.dumps(raw).decode()), trigger_metadata=None)


def test_the_function_is_registered_as_an_event_grid_trigger():
    door = FUNCTIONS["ingest_iothub_events"]
    assert door.trigger == {"direction": "IN", "type": "eventGridTrigger", "name": "event"}
    assert door.inputs == [] and door.outputs == []


def test_the_app_indexes_every_door_and_no_http_function_is_anonymous():
    assert {"ingest_iothub_events", "eventgrid_webhook", "ingest_iothub_stream", "reconcile_registry",
            "route_twin_changes"} <= set(FUNCTIONS)
    for function in FUNCTIONS.values():
        if function.trigger["type"] == "httpTrigger":
            assert function.trigger.get("authLevel", "FUNCTION").upper() != "ANONYMOUS", function.name


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_converted_events_round_trip_to_the_wire_shape(name, schema):
    raw = load_event(name, schema)
    event = converted(raw)
    assert isinstance(event, func.CloudEvent if schema == "cloudevents" else func.EventGridEvent)
    plain = to_plain_event(event)
    assert plain["id"] == raw["id"] and plain["data"] == raw["data"] and plain["subject"] == raw["subject"]


def test_door_applies_events_in_both_schemas(installed):
    invoke(converted(factory.lifecycle("d1")))
    invoke(converted(factory.to_cloudevent(factory.telemetry("d1", {"temperature": 7.5}, second=1))))
    invoke(converted(factory.connection("d1", 3, second=2)))
    assert installed.user_twins()["d1"] == {"$model": "dtmi:twinbridge:IoTDevice;1", "temperature": 7.5,
                                            "connectionState": "Connected"}


def test_door_built_from_constructor_objects(installed):
    event = func.EventGridEvent(id="e1", topic=factory.TOPIC, subject="devices/d2",
                                event_type="Microsoft.Devices.DeviceConnected",
                                event_time=datetime.datetime(2026, 11, 23, 10, tzinfo=datetime.UTC),
                                data=factory.connection("d2", 1)["data"], data_version="1")
    invoke(event)
    assert installed.user_twins()["d2"]["connectionState"] == "Connected"


def test_bad_event_is_quarantined_and_the_invocation_succeeds(installed):
    raw = factory.connection("d3", 1)
    raw["topic"] = raw["topic"].replace("FACTORY-HUB", "SOMEONE-ELSES-HUB")
    invoke(converted(raw))  # does not raise: Event Grid must not retry a poison event
    assert [r.code for r in installed.quarantine] == ["TOPIC_NOT_ALLOWED"]
    assert installed.user_twins() == {}


def test_transient_failure_raises_so_event_grid_redelivers(installed, monkeypatch):
    def unavailable(twin_id):
        raise TransientError(Code.ADT_UNAVAILABLE, "injected outage")

    monkeypatch.setattr(installed.twins, "get_twin", unavailable)
    with pytest.raises(TransientError):
        invoke(converted(factory.connection("d4", 1)))
    monkeypatch.undo()
    invoke(converted(factory.connection("d4", 1)))  # the redelivery
    assert installed.user_twins()["d4"]["connectionState"] == "Connected"
