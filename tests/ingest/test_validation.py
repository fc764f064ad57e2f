"""Envelope and payload validation of the five IoT Hub event types, both schemas (docs/azure-behaviour.md §1)."""

import pytest

from shared.errors import Code, PermanentError
from shared.ingest.events import Kind, Schema
from shared.ingest.validation import read_envelope, validate_event
from tests.support.fixtures import SAMPLE_NAMES, SAMPLE_TOPIC, load_event


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_sample_validates_in_both_schemas(name, schema):
    raw = load_event(name, schema)
    envelope = read_envelope(raw)
    assert envelope.schema is (Schema.CLOUD_EVENTS if schema == "cloudevents" else Schema.EVENT_GRID)
    assert envelope.topic == SAMPLE_TOPIC
    event = validate_event(raw, envelope)
    assert event.device_id == "LogicAppTestDevice"
    assert event.subject == "devices/LogicAppTestDevice"


def test_documented_quirks_are_tolerated():
    telemetry = validate_event(raw := load_event("device_telemetry"), read_envelope(raw))
    assert telemetry.id == "9af86784-8d40-fe2g-8b2a-bab65e106785"  # not a UUID: the docs' own sample
    connected = validate_event(raw := load_event("device_connected"), read_envelope(raw))
    assert connected.module_id is None  # moduleId "" means no module
    created = validate_event(raw := load_event("device_created"), read_envelope(raw))
    assert created.kind is Kind.CREATED and created.twin_version == 2  # deviceEtag "null" accepted


def test_sequence_number_is_a_hex_number():
    event = validate_event(raw := load_event("device_connected"), read_envelope(raw))
    assert event.sequence == int("000000000000000001D4132452F67CE200000002000000000000000000000001", 16)
    lower = dict(raw, data={**raw["data"], "deviceConnectionStateEventInfo": {"sequenceNumber": "1d4"}})
    assert validate_event(lower, read_envelope(lower)).sequence == 0x1D4


def test_sequence_numbers_longer_than_iot_hubs_256_bits_are_refused():
    raw = load_event("device_connected")
    longest = dict(raw, data={**raw["data"], "deviceConnectionStateEventInfo": {"sequenceNumber": "F" * 64}})
    assert validate_event(longest, read_envelope(longest)).sequence == 2**256 - 1
    longer = dict(raw, data={**raw["data"], "deviceConnectionStateEventInfo": {"sequenceNumber": "0" + "F" * 64}})
    with pytest.raises(PermanentError) as caught:
        validate_event(longer, read_envelope(longer))
    assert caught.value.code is Code.SCHEMA_INVALID
    assert caught.value.path == "data.deviceConnectionStateEventInfo.sequenceNumber"


def test_one_error_lists_every_problem_with_its_path():
    raw = load_event("device_created")
    raw["eventTime"] = "not a time"
    del raw["data"]["hubName"]
    raw["data"]["deviceId"] = 42
    raw["data"]["twin"]["version"] = "seven"
    with pytest.raises(PermanentError) as caught:
        validate_event(raw, read_envelope(raw))
    err = caught.value
    assert err.code is Code.SCHEMA_INVALID
    assert {p.path for p in err.problems} == {"eventTime", "data.hubName", "data.deviceId", "data.twin.version"}


def test_envelope_lists_every_missing_field_in_the_schemas_own_names():
    with pytest.raises(PermanentError) as caught:
        read_envelope({"specversion": "1.0", "id": "x", "data": {}})
    assert {p.path for p in caught.value.problems} == {"source", "subject", "type", "time"}
    with pytest.raises(PermanentError) as caught:
        read_envelope({"eventType": "Microsoft.Devices.DeviceConnected", "id": ""})
    assert {p.path for p in caught.value.problems} == {"id", "topic", "subject", "eventTime"}


@pytest.mark.parametrize("raw", [[], "text", 3, None, {"nothing": "here"}])
def test_non_events_are_not_an_event(raw):
    with pytest.raises(PermanentError) as caught:
        read_envelope(raw)
    assert caught.value.code is Code.NOT_AN_EVENT


def test_cloudevents_other_than_1_0_are_refused():
    raw = load_event("device_connected", "cloudevents")
    raw["specversion"] = "0.1"
    with pytest.raises(PermanentError) as caught:
        read_envelope(raw)
    assert caught.value.code is Code.NOT_AN_EVENT and caught.value.path == "specversion"


def test_telemetry_keeps_content_type_and_checks_application_properties():
    event = validate_event(raw := load_event("device_telemetry"), read_envelope(raw))
    raw["data"]["properties"]["nested"] = {"not": "a string"}
    with pytest.raises(PermanentError) as caught:
        validate_event(raw, read_envelope(raw))
    assert caught.value.problems[0].path.startswith("data.properties.nested")
    assert event.content_type == "application/json" and event.content_encoding == "utf-8"
    assert event.enqueued_ticks is not None and event.enqueued_ticks > 0


def test_module_telemetry_carries_the_module_id():
    raw = load_event("device_telemetry")
    raw["data"]["systemProperties"]["iothub-connection-module-id"] = "tempSensor"
    assert validate_event(raw, read_envelope(raw)).module_id == "tempSensor"


@pytest.mark.parametrize(("where", "value", "path"), [
    (("data", "body"), 5, "data.body"),
    (("data", "systemProperties", "iothub-connection-module-id"), 5,
     "data.systemProperties.iothub-connection-module-id"),
    (("data", "properties"), {"a": [1]}, "data.properties.a"),
    (("data", "systemProperties", "iothub-connection-device-id"), "bad/id",
     "data.systemProperties.iothub-connection-device-id"),
])
def test_field_paths_name_fields_of_the_event_never_pydantic_internals(where, value, path):
    raw = load_event("device_telemetry")
    target = raw
    for key in where[:-1]:
        target = target[key]
    target[where[-1]] = value
    with pytest.raises(PermanentError) as caught:
        validate_event(raw, read_envelope(raw))
    assert [p.path for p in caught.value.problems] == [path]  # one problem per field, unions merged
    assert "[" not in caught.value.problems[0].path and "str" not in caught.value.problems[0].path.split(".")


def test_a_telemetry_events_time_and_enqueued_time_are_read_each_and_both_reported_when_bad():
    """The documented sample stamps eventTime with the enqueued time (the same text: read once); different texts
    are each read, and the same bad text is reported at both paths."""
    raw = load_event("device_telemetry")
    assert raw["eventTime"] == raw["data"]["systemProperties"]["iothub-enqueuedtime"]
    same = validate_event(raw, read_envelope(raw))
    assert same.enqueued_ticks == same.event_ticks
    later = dict(raw, eventTime="2019-01-07T20:58:31.5Z")
    event = validate_event(later, read_envelope(later))
    assert event.event_ticks - event.enqueued_ticks == 10_200_000  # 1.02 s in ticks: each text read on its own
    for bad in ("not a time", "2019-13-07T20:58:30.48Z"):
        broken = dict(raw, eventTime=bad, data={**raw["data"], "systemProperties": {
            **raw["data"]["systemProperties"], "iothub-enqueuedtime": bad}})
        with pytest.raises(PermanentError) as caught:
            validate_event(broken, read_envelope(broken))
        assert {p.path for p in caught.value.problems} == {"eventTime", "data.systemProperties.iothub-enqueuedtime"}
