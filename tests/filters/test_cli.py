"""python -m twinbridge filters export|check|bench, through twinbridge.cli.main."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path

import pytest

from twinbridge.cli import main

CONFIG = """\
filters:
  subscription:
    includedEventTypes: [Microsoft.Devices.DeviceTelemetry]
    subjectBeginsWith: devices/
    advancedFilters:
      - {operatorType: NumberGreaterThan, key: data.body.temperature, value: 20}
      - {operatorType: StringIn, key: data.properties.site, values: ["north wing", south]}
  routing_query: "$body.temperature > 20 OR processingPath = 'hot'"
"""


def telemetry(event_id: str, temperature: float, site: str = "south", subject: str = "devices/d1") -> dict:
    return {"id": event_id, "topic": "/hub", "subject": subject, "eventType": "Microsoft.Devices.DeviceTelemetry",
            "dataVersion": "", "data": {
                "body": {"temperature": temperature}, "properties": {"site": site},
                "systemProperties": {"iothub-content-type": "application/json",
                                     "iothub-content-encoding": "utf-8"}}}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "app.yaml"
    path.write_text(CONFIG)
    return path


def test_export_arm(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filters", "export", "--config", str(config), "--format", "arm"]) == 0
    out, err = capsys.readouterr()
    arm = json.loads(out)
    assert arm["includedEventTypes"] == ["Microsoft.Devices.DeviceTelemetry"]
    assert arm["advancedFilters"][1] == {"operatorType": "StringIn", "key": "data.properties.site",
                                         "values": ["north wing", "south"]}
    assert "$body.temperature > 20 OR processingPath = 'hot'" in err


def test_export_az_is_a_valid_shell_command(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filters", "export", "--config", str(config), "--format", "az"]) == 0
    out = capsys.readouterr().out
    command, _, comment = out.partition("\n# ")
    words = shlex.split(command.replace("\\\n", " "))
    assert words[:4] == ["az", "eventgrid", "event-subscription", "create"]
    i = words.index("--advanced-filter", words.index("--advanced-filter") + 1)
    assert words[i:i + 5] == ["--advanced-filter", "data.properties.site", "StringIn", "north wing", "south"]
    assert words[words.index("--included-event-types") + 1] == "Microsoft.Devices.DeviceTelemetry"
    assert "processingPath = 'hot'" in comment


def test_export_az_refuses_what_az_would_invert(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.json"
    path.write_text(json.dumps({"filters": {"subscription": {"advancedFilters": [
        {"operatorType": "BoolEquals", "key": "data.body.alarm", "value": False}]}}}))
    assert main(["filters", "export", "--config", str(path), "--format", "az"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "filters.subscription.advancedFilters[0]" in err or "advancedFilters[0]" in err
    assert "--format arm" in err
    assert main(["filters", "export", "--config", str(path), "--format", "arm"]) == 0


def test_export_json_config_without_filters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "app.json"
    path.write_text(json.dumps({"event_types": []}))
    assert main(["filters", "export", "--config", str(path)]) == 0
    assert json.loads(capsys.readouterr().out) == {"isSubjectCaseSensitive": False,
                                                   "enableAdvancedFilteringOnArrays": False}


def test_export_invalid_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("filters:\n  routing_query: \"a IN ('x')\"\n")
    assert main(["filters", "export", "--config", str(path)]) == 2
    assert "filters.routing_query: IN is not supported" in capsys.readouterr().err
    assert main(["filters", "export", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_with_app_config_and_json_array(config: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.json"
    events.write_text(json.dumps([telemetry("a", 25), telemetry("b", 10), telemetry("c", 25, site="west"),
                                  telemetry("d", 25, subject="modules/x")]))
    assert main(["filters", "check", "--filter", str(config), str(events)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "a\tPASS",
        "b\tREJECT\tsubscription: advancedFilters[0] NumberGreaterThan data.body.temperature",
        "c\tREJECT\tsubscription: advancedFilters[1] StringIn data.properties.site",
        "d\tREJECT\tsubscription: subjectBeginsWith",
    ]


def test_check_with_bare_filter_and_json_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flt = tmp_path / "filter.json"
    flt.write_text(json.dumps({"advancedFilters": [{"operatorType": "NumberNotIn", "key": "data.level",
                                                    "values": [0]}]}))
    events = tmp_path / "events.jsonl"
    ce = {"specversion": "1.0", "id": "ce1", "source": "/hub", "type": "t", "data": {"level": 0}}
    events.write_text("\n".join(json.dumps(e) for e in (
        {"id": "eg1", "eventType": "t", "subject": "s", "data": {}}, ce)) + "\n\n")
    assert main(["filters", "check", "--filter", str(flt), str(events)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "eg1\tPASS", "ce1\tREJECT\tadvancedFilters[0] NumberNotIn data.level"]


def test_check_stdin_and_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    flt = tmp_path / "filter.json"
    flt.write_text("{}")
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"id": "x"})))
    assert main(["filters", "check", "--filter", str(flt), "-"]) == 0
    assert capsys.readouterr().out == "x\tPASS\n"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1}\n{nope\n')
    assert main(["filters", "check", "--filter", str(flt), str(bad)]) == 2
    assert "bad.jsonl:2: not JSON" in capsys.readouterr().err
    flt.write_text('{"advancedFilters": [{"operatorType": "Nope", "key": "data.a"}]}')
    assert main(["filters", "check", "--filter", str(flt), str(bad)]) == 2
    assert "advancedFilters[0]: unknown operatorType" in capsys.readouterr().err


def test_bench_prints_rates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["filters", "bench", "--n", "2000"]) == 0
    out = capsys.readouterr().out
    assert out.count("evaluations/s") >= 3
    assert "routing query:" in out
