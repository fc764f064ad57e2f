"""Reading recorded streams element by element (issue 15, point 7): whatever one element holds, the rest goes on."""

from __future__ import annotations

import orjson
import pytest

from tests.cli.test_replay import config, replay  # noqa: F401 - the fixture is used by name
from tests.support import event_factory as factory
from tests.support.fixtures import load_event
from twinbridge.streams import Unparsable, read_events

GOOD = [factory.telemetry("d1", {"temperature": 1.0}), factory.telemetry("d2", {"temperature": 2.0})]


def dumps(event: object, indent: bool = False) -> bytes:
    return orjson.dumps(event, option=orjson.OPT_INDENT_2 if indent else 0)


def items(path) -> list[object]:  # type: ignore[no-untyped-def]
    return [item for item, _ in read_events(path)]


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
@pytest.mark.parametrize("indent", [False, True])
@pytest.mark.parametrize("shape", ["array", "lines", "single"])
def test_every_shape_of_file_gives_its_events(tmp_path, shape: str, indent: bool, bom: bytes) -> None:
    events = GOOD[:1] if shape == "single" else GOOD
    if shape == "array":
        body = dumps(events, indent)
    elif shape == "lines":
        body = b"\n".join(dumps(e, indent) for e in events) + b"\n"
    else:
        body = dumps(events[0], indent)
    path = tmp_path / "events.json"
    path.write_bytes(bom + body)
    assert items(path) == events


BAD_ELEMENTS = {
    "big int": b'{"n": 123456789012345678901234567890}',
    "nan": b'{"n": NaN}',
    "infinity": b'[Infinity]',
    "invalid utf-8": b'{"id": "\xff\xfe"}',
    "garbage": b"nonsense",
    "lone surrogate": b'{"s": "\\ud800"}',
    "deep": b"[" * 5000 + b"]" * 5000,
}


@pytest.mark.parametrize("name", sorted(BAD_ELEMENTS))
def test_a_bad_array_element_does_not_stop_the_stream(tmp_path, name: str) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(b"[" + dumps(GOOD[0]) + b",\n" + BAD_ELEMENTS[name] + b",\n" + dumps(GOOD[1]) + b"]")
    got = items(path)
    assert len(got) == 3 and got[0] == GOOD[0] and got[2] == GOOD[1]


def test_a_broken_json_line_is_one_bad_line(tmp_path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(dumps(GOOD[0]) + b'\n{"id": [\n' + dumps(GOOD[1]) + b"\n")
    got = items(path)
    assert got[0] == GOOD[0] and got[2] == GOOD[1]
    assert isinstance(got[1], Unparsable) and got[1].line == 2


def test_a_truncated_array_keeps_what_came_before(tmp_path) -> None:
    path = tmp_path / "events.json"
    path.write_bytes(b"[" + dumps(GOOD[0]) + b"," + dumps(GOOD[1])[:30])
    got = items(path)
    assert got[0] == GOOD[0] and all(isinstance(g, Unparsable) for g in got[1:])


def test_replay_of_an_array_with_hostile_elements_applies_the_rest(tmp_path, config, capsys) -> None:  # noqa: F811
    good = [load_event("device_created"), load_event("device_connected"), *GOOD]
    path = tmp_path / "events.json"
    path.write_bytes(b"\xef\xbb\xbf[\n" + b",\n".join(
        [dumps(good[0], True), BAD_ELEMENTS["big int"], dumps(good[1], True), BAD_ELEMENTS["nan"],
         BAD_ELEMENTS["invalid utf-8"], dumps(good[2], True), BAD_ELEMENTS["deep"], dumps(good[3], True)]) + b"\n]\n")
    code, twins, quarantine = replay(tmp_path, str(path), config)
    assert code == 0
    assert {t["$dtId"] for t in twins} >= {"LogicAppTestDevice", "d1", "d2"}
    assert len(quarantine) == 4
    assert {q["code"] for q in quarantine} <= {"MALFORMED_JSON", "NOT_AN_EVENT", "UNSUPPORTED_VALUE"}
    out = capsys.readouterr().out
    assert "8 events" in out and "quarantined 4" in out


def test_replay_of_one_pretty_printed_event(tmp_path, config) -> None:  # noqa: F811
    path = tmp_path / "one.json"
    path.write_bytes(dumps(load_event("device_created"), True))
    code, twins, quarantine = replay(tmp_path, str(path), config)
    assert code == 0 and [t["$dtId"] for t in twins] == ["LogicAppTestDevice"] and quarantine == []
