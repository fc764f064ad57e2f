"""Door-level fuzz (issue 15, point 2): hostile values anywhere in an event — recursive JSON with big integers,
NaN/Infinity, lone surrogates, wrong types, nesting to 10,000 levels — through every ingest door, between two good
events. Nothing may raise out of a door, and both neighbours must be applied.

Examples per door: ``FUZZ_EXAMPLES`` (hypothesis ``max_examples``), so 3 doors × 150 = 450 hostile events per run.
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.eventgrid_webhook import handle
from functions.ingest_iothub_stream import ingest_iothub_stream
from functions.runtime import use_app
from shared.ingest.events import DEVICE_TELEMETRY
from shared.settings.doors import DoorSettings
from tests.functions.helpers import post, user_twins
from tests.functions.test_ingest_iothub_events import invoke
from tests.functions.test_ingest_iothub_stream import batch, message
from tests.support import event_factory as factory
from tests.support.rig import make_app

FUZZ_EXAMPLES = 150
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**300)
           | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(st.characters(codec=None, categories=None), max_size=20)  # lone surrogates included
           | st.sampled_from(["\ud800", "x" * 70_000, "", "2026-11-23T10:00:00Z", "9999-12-31T23:59:59Z"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": [value]} if depth % 2 else {"a": value}
    return value


hostile = json_values | st.sampled_from([300, 1_000, 10_000]).map(nested)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in an event a value can be put: each existing key and index, and a new key in each object."""
    out: list[tuple[Any, ...]] = []
    if isinstance(value, dict):
        out.append((*prefix, "fuzz"))
        for key, child in value.items():
            out.append((*prefix, key))
            out.extend(paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out.append((*prefix, i))
            out.extend(paths(child, (*prefix, i)))
    return out


def place(event: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    target: Any = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return event


EVENTS = [lambda: factory.telemetry("victim", {"temperature": 5.0}, event_id="victim", second=3),
          lambda: factory.connection("victim", 7, second=3),
          lambda: factory.lifecycle("victim", second=3),
          lambda: factory.to_cloudevent(factory.telemetry("victim", {"temperature": 5.0}, event_id="victim"))]


@st.composite
def hostile_events(draw: st.DrawFn, data_only: bool = False) -> dict[str, Any]:
    event = draw(st.sampled_from(EVENTS))()
    where = [p for p in paths(event) if not data_only or p[0] == "data"]
    return place(event, draw(st.sampled_from(where)), draw(hostile))


def neighbours() -> list[dict[str, Any]]:
    return [factory.telemetry("n1", {"temperature": 1.0}, event_id="n1", second=1),
            factory.telemetry("n2", {"temperature": 2.0}, event_id="n2", second=2)]


def assert_neighbours_applied(app: Any) -> None:
    twins = user_twins(app.twins)
    assert twins["n1"]["temperature"] == 1.0 and twins["n2"]["temperature"] == 2.0


def lenient_json(value: Any) -> bytes:
    """What a sender may put on the wire: JSON text with NaN, big integers, lone-surrogate escapes and any depth
    (written iteratively: json.dumps stops near 1,000 levels)."""
    out: list[str] = []
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, _Raw):
            out.append(item.text)
        elif isinstance(item, dict):
            parts: list[Any] = [_Raw("{")]
            for i, (key, child) in enumerate(item.items()):
                parts += [_Raw(("," if i else "") + json.dumps(key) + ":"), child]
            stack.extend(reversed([*parts, _Raw("}")]))
        elif isinstance(item, list):
            parts = [_Raw("[")]
            for i, child in enumerate(item):
                parts += [_Raw(","), child] if i else [child]
            stack.extend(reversed([*parts, _Raw("]")]))
        else:
            out.append(json.dumps(item))
    return "".join(out).encode()


class _Raw:
    def __init__(self, text: str) -> None:
        self.text = text


def test_lenient_json_writes_what_json_reads() -> None:
    for value in ({"a": [1, {"b": None}], "c": "\ud800"}, [], {}, [[]], nested(5)):
        assert json.loads(lenient_json(value)) == value
    assert lenient_json(nested(10_000)).count(b"{") == 10_000


@FUZZ
@given(bad=hostile_events())
def test_webhook(bad: dict[str, Any]) -> None:
    app = make_app()
    use_app(app)
    try:
        first, last = neighbours()
        body = b"[" + orjson.dumps(first) + b"," + lenient_json(bad) + b"," + orjson.dumps(last) + b"]"
        response = handle(post(body))
        assert response.status_code == 200, response.get_body()[:300]
        assert_neighbours_applied(app)
    finally:
        use_app(None)


def _event_time(text: Any) -> datetime.datetime:
    """The binding hands the envelope's time over as a datetime (what it cannot parse is the doors' concern)."""
    try:
        return datetime.datetime.fromisoformat(str(text)[:26].rstrip("Z") + "+00:00")
    except ValueError:
        return datetime.datetime(2026, 11, 23, 10, tzinfo=datetime.UTC)


def as_trigger_event(raw: dict[str, Any]) -> str:
    """What the worker hands the door's ``str`` parameter: the event's JSON text as it was delivered."""
    return lenient_json(raw).decode("utf-8", "surrogatepass")


@FUZZ
@given(bad=hostile_events(data_only=True))
def test_event_grid_trigger(bad: dict[str, Any]) -> None:
    app = make_app()
    use_app(app)
    try:
        first, last = neighbours()
        invoke(as_trigger_event(first))
        invoke(as_trigger_event(bad))  # never raises: a poison event is quarantined
        invoke(as_trigger_event(last))
        assert_neighbours_applied(app)
    finally:
        use_app(None)


def utf8_clean(value: Any) -> bool:
    """Event Hubs application properties are AMQP values the host hands over as strict JSON: no lone surrogates, no
    NaN ever arrive there (what the binding cannot convert is the doors' concern, issue 15 point 5)."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode()
        return True
    except (UnicodeEncodeError, RecursionError, ValueError):
        return False


@FUZZ
@given(body=hostile, properties=st.dictionaries(st.text(max_size=8), hostile, max_size=3).filter(utf8_clean),
       as_text=st.booleans(), raw_bytes=st.binary(max_size=64))
def test_event_hubs(body: Any, properties: dict[str, Any], as_text: bool, raw_bytes: bytes) -> None:
    app = make_app(doors=DoorSettings(iothub_resource_id=factory.TOPIC, stream_chunk_events=8))
    use_app(app)
    try:
        bad = message("victim", {"x": 1}, properties=properties)
        bad["body"] = lenient_json(body) if as_text else raw_bytes
        good = [message("n1", {"temperature": 1.0}, second=1), message("n2", {"temperature": 2.0}, second=2)]
        try:
            converted = batch([good[0], bad, good[1]])
        except (TypeError, ValueError, RecursionError):
            return  # the binding's own converter refused the properties: never reaches the door
        ingest_iothub_stream(converted)
        assert_neighbours_applied(app)
    finally:
        use_app(None)


def test_the_strategies_reach_what_they_claim() -> None:
    """The fuzz is only as good as its inputs: the hostile kinds it claims are really drawn."""
    seen: set[str] = set()

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(value=hostile)
    def collect(value: Any) -> None:
        stack = [(value, 1)]
        while stack:
            v, depth = stack.pop()
            if depth >= 300:
                seen.add("deep")
            if isinstance(v, dict):
                stack.extend((c, depth + 1) for c in v.values())
            elif isinstance(v, list):
                stack.extend((c, depth + 1) for c in v)
            elif isinstance(v, float) and not math.isfinite(v):
                seen.add("non-finite")
            elif isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2**64:
                seen.add("big int")
            elif isinstance(v, str) and any(0xD800 <= ord(c) <= 0xDFFF for c in v):
                seen.add("surrogate")

    collect()
    assert seen == {"deep", "non-finite", "big int", "surrogate"}


def _telemetry_with(value: Any) -> dict[str, Any]:
    return factory.telemetry("victim", {"temperature": 5.0, "x": value}, event_id="victim")


SAME_CODE_CASES = {
    "NaN in the body": (place(_telemetry_with(1), ("data", "body", "temperature"), math.nan), "UNSUPPORTED_VALUE",
                        "data.body.temperature"),
    "lone surrogate in the body": (_telemetry_with("\ud800"), "UNSUPPORTED_VALUE", "data.body.x"),
    "300 levels deep": (_telemetry_with(nested(300)), "UNSUPPORTED_VALUE", "data.body.x"),
    "body of the wrong type": (place(_telemetry_with(1), ("data", "body"), 5), "SCHEMA_INVALID", "data.body"),
    "sequence number too long": (place(factory.connection("victim", 1), ("data", "deviceConnectionStateEventInfo",
                                                                         "sequenceNumber"), "1" * 65),
                                 "SCHEMA_INVALID", "data.deviceConnectionStateEventInfo.sequenceNumber"),
    "from the future": (place(factory.lifecycle("victim"), ("eventTime",), "9999-12-31T23:59:59Z"),
                        "FUTURE_TIMESTAMP", "eventTime"),
    # orjson reads these as rounded floats: the webhook used to write 1.8446744073709552e+19 to the twin
    "integer above 2**64 - 1 in the body": (_telemetry_with(2**64), "UNSUPPORTED_VALUE", "data.body.x"),
    "integer below -2**63 in the body": (_telemetry_with(-(2**63) - 1), "UNSUPPORTED_VALUE", "data.body.x"),
    "a 40-digit integer nested in the body": (_telemetry_with({"a": [1, 10**40]}), "UNSUPPORTED_VALUE",
                                              "data.body.x.a[1]"),
    "integer above 2**64 - 1 as a property": (place(_telemetry_with(1), ("data", "body", "temperature"), 2**70),
                                              "UNSUPPORTED_VALUE", "data.body.temperature"),
}


def _through_event_hubs(event: dict[str, Any]) -> None:
    """The event's telemetry body as an IoT Hub message on the Event Hubs door (the binding carries it as bytes)."""
    bad = message("victim", lenient_json(event["data"]["body"]))
    ingest_iothub_stream(batch([bad]))


def test_one_code_and_path_per_problem_on_every_door() -> None:
    """The Event Grid doors for every case; the Event Hubs door too for a problem in a telemetry body (what its
    binding can carry: the body's bytes; an envelope there is built by the door, not sent)."""
    through_event_hubs = 0
    for name, (event, code, path) in SAME_CODE_CASES.items():
        got = {}
        doors = ["webhook", "trigger"]
        if path.startswith("data.body.") and event.get("eventType") == DEVICE_TELEMETRY:
            doors.append("event hubs")
            through_event_hubs += 1
        for door in doors:
            app = make_app(doors=DoorSettings(iothub_resource_id=factory.TOPIC))
            use_app(app)
            try:
                if door == "webhook":
                    response = handle(post(b"[" + lenient_json(event) + b"]"))
                    assert response.status_code == 200, (name, response.get_body())
                elif door == "trigger":
                    invoke(as_trigger_event(event))
                else:
                    _through_event_hubs(event)
                got[door] = [(r.code, r.problems[0]["path"]) for r in app.quarantine]  # type: ignore[attr-defined]
                assert not user_twins(app.twins), (name, door)  # nothing of it written
            finally:
                use_app(None)
        assert got["webhook"] == got["trigger"], name
        assert got.get("event hubs", got["webhook"]) == got["webhook"], (name, got)
        assert len(got["webhook"]) == 1 and got["webhook"][0][0] == code, name
        assert got["webhook"][0][1].startswith(path) and len(got["webhook"][0][1]) <= 121, name
    assert through_event_hubs == 7
