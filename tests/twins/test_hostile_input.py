"""Hostile input (issue 15): deep, huge-integer, non-finite, lone-surrogate, wrong-typed and future-stamped events
become quarantine records with a stable code and a readable path; nothing raises, no neighbour is lost."""

from __future__ import annotations

import math

import orjson
import pytest

from shared.errors import Code, PermanentError
from shared.ingest.intake import MAX_NESTING, check_representable, find_unsupported
from shared.ingest.timeparse import parse_ticks
from shared.outcome import Outcome
from shared.quarantine_record import MAX_DEPTH, build_record, json_safe, record_id
from shared.settings.app_config import AppConfig
from tests.support import event_factory as factory
from tests.support.rig import rig


def nested(depth: int, leaf: object = 1) -> object:
    value: object = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


HOSTILE = {
    "deep 300": nested(300),
    "deep 10000": nested(10_000),
    "deep list 10000": [[[]]] * 2 + [nested(10_000)],
    "big int": 2**200,
    "negative big int": -(2**64),
    "nan": math.nan,
    "infinity": math.inf,
    "lone surrogate": "\ud800x",
    "surrogate key": {"\udfff": 1},
    "int key": {1: 2},
    "bytes": b"\x00\xff",
    "set": {1, 2},
    "object": object(),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_records_of_any_value_can_always_be_made_and_written(name: str) -> None:
    value = HOSTILE[name]
    event = factory.telemetry("d1", {"temperature": 1.0})
    event["data"]["body"]["x"] = value
    safe = json_safe(event)
    orjson.dumps(safe)  # never raises: the record can be stored
    assert record_id(event, "X") == record_id(event, "X")  # deterministic (no clock, no randomness), never raises
    error = PermanentError.at(Code.UNSUPPORTED_VALUE, "data.body.x", "bad")
    record = build_record(event, error)
    assert record.code == "UNSUPPORTED_VALUE" and record.event_id == event["id"]
    orjson.dumps(record.to_data())
    assert orjson.loads(orjson.dumps(json_safe(value))) == json_safe(value)  # the value alone, made storable


def test_json_safe_keeps_what_it_can_and_bounds_depth() -> None:
    safe = json_safe({"a": [1, 2.5, None, True, "t", 2**64, math.nan, "\ud800"], "deep": nested(MAX_DEPTH + 5)})
    assert safe["a"] == [1, 2.5, None, True, "t", str(2**64), "nan", "\\ud800"]
    level = safe["deep"]
    for _ in range(MAX_DEPTH - 1):
        level = level["a"]
    assert isinstance(level, str) and "nested deeper" in level


@pytest.mark.parametrize(("value", "path", "reason"), [
    ({"a": [1, {"b": 2**64}]}, "a[1].b", "integer beyond 64 bits"),
    ({"a": {"b": "\udc00"}}, "a.b", "lone surrogate"),
    ({"a": {"\ud800": 1}}, "a", "object key"),
    ({"a": [math.inf]}, "a[0]", "not a JSON number"),
    ({"a": {3: 1}}, "a", "JSON keys are text"),
    ({"a": {"b": b"x"}}, "a.b", "bytes is not a JSON value"),
    ({"a": nested(10_000)}, "a" + ".a" * (MAX_NESTING - 1), f"deeper than {MAX_NESTING}"),
])
def test_the_first_unsupported_value_is_found_with_its_path(value: object, path: str, reason: str) -> None:
    found = find_unsupported(value)
    assert found is not None and found[0] == path and reason in found[1]


def test_what_orjson_writes_passes_and_what_it_cannot_is_unsupported_value() -> None:
    assert check_representable({"a": nested(MAX_NESTING - 1), "b": 2**64 - 1, "c": -(2**63)}) > 0
    for bad in ({"a": nested(MAX_NESTING + 1)}, {"b": 2**64}, {"c": -(2**63) - 1}, {"d": "\ud800"}):
        with pytest.raises(PermanentError) as caught:
            check_representable(bad)
        assert caught.value.code is Code.UNSUPPORTED_VALUE and caught.value.path


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_event_is_quarantined_and_its_neighbours_applied(name: str) -> None:
    r = rig()
    bad = factory.telemetry("bad", {"temperature": 1.0}, event_id="bad")
    bad["data"]["body"]["temperature"] = HOSTILE[name]
    events = [factory.telemetry("d1", {"temperature": 1.0}), bad, factory.telemetry("d2", {"temperature": 2.0})]
    report = r.pipeline.process(events)
    outcomes = [res.outcome for res in report.results]
    assert outcomes[0] is Outcome.APPLIED and outcomes[2] is Outcome.APPLIED
    assert outcomes[1] is Outcome.QUARANTINED, report.results[1]
    assert report.results[1].code == "UNSUPPORTED_VALUE"
    assert report.results[1].path.startswith("data.body.temperature")
    assert r.user_twins()["d2"]["temperature"] == 2.0
    assert len(r.quarantine.records) == 1


def test_an_unexpected_failure_in_intake_is_quarantined_not_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    r = rig()
    real = r.pipeline.intake.accept

    def flaky(raw, size=None, not_after=None):  # type: ignore[no-untyped-def]
        if raw.get("id") == "boom":
            raise KeyError("a gap in intake's checks")
        return real(raw, size, not_after)

    monkeypatch.setattr(r.pipeline.intake, "accept", flaky)
    report = r.pipeline.process([factory.telemetry("d1", {"temperature": 1.0}, event_id="boom"),
                                 factory.telemetry("d2", {"temperature": 2.0})])
    assert [res.code for res in report.results] == ["INTAKE_FAILED", None]
    assert report.results[1].outcome is Outcome.APPLIED


# ---- ordering keys from the future (point 8) -------------------------------------------------------------------
NOW = "2026-11-23T12:00:00Z"


def clock_at(text: str) -> float:
    return (parse_ticks(text) - parse_ticks("1970-01-01T00:00:00Z")) / 10_000_000


def rig_at(now: str, **config: object):  # type: ignore[no-untyped-def]
    r = rig(config or None)
    r.pipeline.intake._clock = lambda: clock_at(now)
    return r


@pytest.mark.parametrize("kind", ["lifecycle", "connection", "telemetry-enqueued", "telemetry-event-time"])
def test_an_ordering_key_beyond_the_skew_is_future_timestamp(kind: str) -> None:
    r = rig_at(NOW)
    far = "9999-12-31T23:59:59.9999999Z"
    if kind == "lifecycle":
        event, path = factory.lifecycle("d1", created=False), "eventTime"
        event["eventTime"] = far
    elif kind == "connection":
        event, path = factory.connection("d1", 5), "eventTime"
        event["eventTime"] = far
    elif kind == "telemetry-enqueued":
        event, path = factory.telemetry("d1", {"temperature": 9.0}), "data.systemProperties.iothub-enqueuedtime"
        event["data"]["systemProperties"]["iothub-enqueuedtime"] = far
    else:
        event, path = factory.telemetry("d1", {"temperature": 9.0}), "eventTime"
        event["eventTime"] = far
    report = r.pipeline.process([event, factory.telemetry("d2", {"temperature": 2.0})])
    assert (report.results[0].code, report.results[0].path) == ("FUTURE_TIMESTAMP", path)
    assert report.results[1].outcome is Outcome.APPLIED
    # the device is not pinned: a real, later event still applies
    again = r.pipeline.process([factory.lifecycle("d1"), factory.telemetry("d1", {"temperature": 3.0}, second=5)])
    assert [res.outcome for res in again.results] == [Outcome.APPLIED, Outcome.APPLIED]


def test_the_skew_is_configurable() -> None:
    event = factory.telemetry("d1", {"temperature": 1.0})  # stamped 10:00:00, enqueued 10:00:00.25
    assert rig_at("2026-11-23T09:00:01Z").pipeline.process([event]).results[0].outcome is Outcome.APPLIED
    late = rig_at("2026-11-23T08:59:59Z").pipeline.process([event]).results[0]
    assert late.code == "FUTURE_TIMESTAMP"
    tight = rig_at("2026-11-23T09:59:00Z", limits={"max_clock_skew_seconds": 30})
    assert tight.pipeline.process([event]).results[0].code == "FUTURE_TIMESTAMP"
    assert AppConfig.from_data({}).limits.max_clock_skew_seconds == 3600


def test_json_safe_survives_containers_that_fail_when_read() -> None:
    class Broken(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[no-untyped-def]
            raise RuntimeError("no")

    assert json_safe(Broken(a=1)) == "<Broken that cannot be shown>"
    record = build_record({"id": "e", "data": Broken(a=1)}, PermanentError.at(Code.INTAKE_FAILED, "", "x"))
    assert record.event_id == "e"
