"""The Event Grid trigger door, called as the worker calls it: through azure.functions types and converters."""

import asyncio

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
    invoke(delivered(factory.lifecycle("d1")))
    invoke(delivered(factory.to_cloudevent(factory.telemetry("d1", {"temperature": 7.5}, second=1))))
    invoke(delivered(factory.connection("d1", 3, second=2)))
    assert installed.user_twins()["d1"] == {"$model": "dtmi:twinbridge:IoTDevice;1", "temperature": 7.5,
                                            "connectionState": "Connected"}


def test_bad_event_is_quarantined_and_the_invocation_succeeds(installed):
    raw = factory.connection("d3", 1)
    raw["topic"] = raw["topic"].replace("FACTORY-HUB", "SOMEONE-ELSES-HUB")
    invoke(delivered(raw))  # does not raise: Event Grid must not retry a poison event
    assert [r.code for r in installed.quarantine] == ["TOPIC_NOT_ALLOWED"]
    assert installed.user_twins() == {}


def test_transient_failure_raises_so_event_grid_redelivers(installed, monkeypatch):
    def unavailable(twin_id):
        raise TransientError(Code.ADT_UNAVAILABLE, "injected outage")

    monkeypatch.setattr(installed.twins, "get_twin", unavailable)
    with pytest.raises(TransientError):
        invoke(delivered(factory.connection("d4", 1)))
    monkeypatch.undo()
    invoke(delivered(factory.connection("d4", 1)))  # the redelivery
    assert installed.user_twins()["d4"]["connectionState"] == "Connected"


# ---- the raw binding (issue 15 §5): input azure.functions' converter cannot convert reaches the pipeline ----------
def delivered(raw):
    """What the worker hands a ``str`` parameter: the event's JSON text (generic binding, no converter)."""
    return raw if isinstance(raw, str) else orjson.dumps(raw).decode()


def test_the_trigger_parameter_is_raw_text_so_the_worker_skips_the_converter():
    import typing

    from twinbridge.localhost.server import event_grid_value

    door = FUNCTIONS["ingest_iothub_events"]
    assert typing.get_type_hints(door.user_function)["event"] is str
    assert event_grid_value(door, '{"id": "x"}') == '{"id": "x"}'


def _offset_time():
    raw = factory.connection("d5", 1)
    raw["eventTime"] = "2026-11-23T10:00:00+02:00"
    return raw


def _garbage_time():
    raw = factory.connection("d5", 1)
    raw["eventTime"] = "yesterday-ish"
    return raw


def _wrong_types():
    raw = factory.connection("d5", 1)
    raw["eventTime"], raw["subject"] = 1764547200, ["devices", "d5"]
    return raw


def _self_extension():
    raw = factory.to_cloudevent(factory.connection("d5", 1))
    raw["self"] = "x"
    return raw


# name → (input the converter raises on, what our pipeline does with it: None = applied — valid events that only
# the library's parser refuses — else the (code, field path) of its quarantine record)
UNCONVERTIBLE = {"not an object": (42, ("NOT_AN_EVENT", "")), "array element list": ([1, 2], ("NOT_AN_EVENT", "")),
                 "offset eventTime": (_offset_time(), None),
                 "garbage eventTime": (_garbage_time(), ("SCHEMA_INVALID", "eventTime")),
                 "wrong-typed envelope": (_wrong_types(), ("SCHEMA_INVALID", "subject")),
                 "CloudEvents extension 'self'": (_self_extension(), None)}


@pytest.mark.parametrize("name", list(UNCONVERTIBLE))
def test_input_the_converter_rejects_reaches_the_pipeline(installed, name):
    raw, quarantined = UNCONVERTIBLE[name]
    with pytest.raises((TypeError, ValueError, AttributeError)):  # the library's converter cannot take it
        converted(raw)
    invoke(delivered(raw))  # does not raise: no 500, no 24 h of retries
    records = list(installed.quarantine)
    if quarantined is None:
        assert records == [] and installed.user_twins()["d5"]["connectionState"] == "Connected", name
    else:
        assert [(r.code, r.problems[0]["path"] if r.problems else "") for r in records] == [quarantined], name
        assert installed.user_twins() == {}


def test_text_that_is_not_json_is_quarantined_whole(installed):
    invoke("{not json")
    [record] = list(installed.quarantine)
    assert record.code == Code.NOT_AN_EVENT and record.event == "{not json"  # kept whole, for replay


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_documented_samples_apply_through_the_raw_binding(installed, name, schema):
    invoke(delivered(load_event(name, schema)))
    assert list(installed.quarantine) == [], [r.code for r in installed.quarantine]
