"""Guard (topic, type, subject, size) and telemetry body decoding."""

import base64

import pytest

from shared.errors import Code, PermanentError
from shared.ingest.decode import decode_body, is_json_content
from shared.ingest.guard import Guard, check_subject
from shared.ingest.validation import read_envelope, validate_event
from shared.settings.app_config import AppConfig
from tests.support.fixtures import SAMPLE_TOPIC, load_event


def guard(**config):
    return Guard.from_config(AppConfig.from_data({"topics": [SAMPLE_TOPIC.lower()], **config}))


def test_topic_compares_case_insensitively_as_iot_hub_sends_upper_case():
    guard().check_envelope(read_envelope(load_event("device_connected")))


def test_foreign_topic_and_type_are_refused_with_the_field_name():
    raw = load_event("device_connected", "cloudevents")
    raw["source"] = SAMPLE_TOPIC + "X"
    with pytest.raises(PermanentError) as caught:
        guard().check_envelope(read_envelope(raw))
    assert (caught.value.code, caught.value.path) == (Code.TOPIC_NOT_ALLOWED, "source")
    raw = load_event("device_connected")
    with pytest.raises(PermanentError) as caught:
        guard(event_types=["Microsoft.Devices.DeviceTelemetry"]).check_envelope(read_envelope(raw))
    assert (caught.value.code, caught.value.path) == (Code.EVENT_TYPE_NOT_ALLOWED, "eventType")


def test_star_allows_any_iot_hub_but_nothing_else():
    star = Guard.from_config(AppConfig.from_data({"topics": ["*"]}))
    star.check_envelope(read_envelope(load_event("device_connected")))
    raw = load_event("device_connected")
    raw["topic"] = "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/a"
    with pytest.raises(PermanentError):
        star.check_envelope(read_envelope(raw))


def test_no_topics_configured_refuses_everything():
    with pytest.raises(PermanentError):
        Guard.from_config(AppConfig.default()).check_envelope(read_envelope(load_event("device_connected")))


def test_size_limit():
    guard(limits={"max_event_bytes": 100}).check_size(100)
    with pytest.raises(PermanentError) as caught:
        guard(limits={"max_event_bytes": 100}).check_size(101)
    assert caught.value.code is Code.EVENT_TOO_LARGE


def test_subject_must_name_the_device_or_its_module():
    raw = load_event("module_connected")
    event = validate_event(raw, read_envelope(raw))
    check_subject(event)

    def with_subject(subject):
        changed = raw | {"subject": subject}
        return validate_event(changed, read_envelope(changed))

    check_subject(with_subject("devices/LogicAppTestDevice/modules/tempSensor"))
    for wrong in ("devices/logicapptestdevice", "devices/LogicAppTestDevice/modules/other", "LogicAppTestDevice"):
        with pytest.raises(PermanentError) as caught:
            check_subject(with_subject(wrong))
        assert caught.value.code is Code.SUBJECT_MISMATCH  # device ids are case-sensitive


@pytest.mark.parametrize(("ctype", "enc", "expected"), [
    ("application/json", "utf-8", True), ("Application/JSON", "UTF-8", True),
    ("application/json; charset=utf-8", "utf-8", True), ("application/json", None, False),
    (None, "utf-8", False), ("text/plain", "utf-8", False), ("application/json", "utf-16", False),
])
def test_json_content_detection(ctype, enc, expected):
    assert is_json_content(ctype, enc) is expected


def _telemetry(body, **sysprops):
    raw = load_event("device_telemetry_base64")
    raw["data"]["body"] = body
    raw["data"]["systemProperties"].update(sysprops)
    return validate_event(raw, read_envelope(raw))


def test_base64_json_is_used_as_json_unless_switched_off():
    body = base64.b64encode(b'{"temperature": 20}').decode()
    assert decode_body(_telemetry(body), base64_json=True, max_bytes=1000) == {"temperature": 20}
    with pytest.raises(PermanentError) as caught:
        decode_body(_telemetry(body), base64_json=False, max_bytes=1000)
    assert caught.value.code is Code.BODY_NOT_JSON and caught.value.path == "data.body"


@pytest.mark.parametrize(("body", "code"), [
    ("not base64!", Code.BODY_NOT_BASE64),
    (base64.b64encode(b"\xff\xfe binary").decode(), Code.BODY_NOT_JSON),
    (base64.b64encode(b"[1, 2]").decode(), Code.BODY_NOT_JSON),
])
def test_undecodable_bodies_are_permanent(body, code):
    with pytest.raises(PermanentError) as caught:
        decode_body(_telemetry(body), base64_json=True, max_bytes=1000)
    assert caught.value.code is code


def test_decoded_body_size_is_limited():
    body = base64.b64encode(b'{"a": "' + b"x" * 2000 + b'"}').decode()
    with pytest.raises(PermanentError) as caught:
        decode_body(_telemetry(body), base64_json=True, max_bytes=1000)
    assert caught.value.code is Code.EVENT_TOO_LARGE
