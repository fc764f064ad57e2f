"""The replay CLI contract.

python -m twinbridge replay EVENTS [--config] [--batch-size] [--twins-out] [--quarantine-out]
"""

import random
import subprocess
import sys

import orjson
import pytest

from shared.settings.environment import APP_ROOT
from tests.support import event_factory as factory
from tests.support.fixtures import SAMPLE_TOPIC, invalid_cases
from tests.support.streams import fleet_stream
from twinbridge.cli import main


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(f"topics:\n  - '{factory.TOPIC}'\n  - '{SAMPLE_TOPIC}'\n")
    return str(path)


def write_jsonl(path, events):
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return str(path)


def replay(tmp_path, events_file, config, *extra):
    twins_out, quarantine_out = tmp_path / "twins.json", tmp_path / "quarantine.jsonl"
    code = main(["replay", events_file, "--config", config, "--twins-out", str(twins_out),
                 "--quarantine-out", str(quarantine_out), *extra])
    quarantine = [orjson.loads(line) for line in quarantine_out.read_bytes().splitlines()] \
        if quarantine_out.exists() else []
    return code, orjson.loads(twins_out.read_bytes()), quarantine


def strip(twins):
    return [{k: v for k, v in t.items() if k not in ("$etag", "$metadata")} | {"$model": t["$metadata"]["$model"]}
            for t in twins]


@pytest.mark.parametrize("batch_size", ["1", "100"])
def test_same_twins_for_ordered_shuffled_and_doubled_streams(tmp_path, config, batch_size):
    stream = fleet_stream(devices=5, steps=6)
    shuffled = random.Random(1).sample(stream, len(stream))
    doubled = random.Random(2).sample(stream * 2, len(stream) * 2)
    results = []
    for name, events in (("ordered", stream), ("shuffled", shuffled), ("doubled", doubled)):
        code, twins, quarantine = replay(tmp_path, write_jsonl(tmp_path / f"{name}.jsonl", events), config,
                                         "--batch-size", batch_size)
        assert code == 0 and quarantine == []
        results.append(strip(twins))
    assert results[0] == results[1] == results[2]
    assert [t["$dtId"] for t in results[0]] == sorted(t["$dtId"] for t in results[0])  # sorted by $dtId


def test_json_array_input_and_summary(tmp_path, config, capsys):
    path = tmp_path / "events.json"
    path.write_bytes(orjson.dumps(fleet_stream(devices=2, steps=3)))
    code, twins, _ = replay(tmp_path, str(path), config)
    out = capsys.readouterr().out
    assert code == 0 and len(twins) == 1
    assert "applied" in out and "quarantined 0" in out


def test_bad_lines_and_events_are_quarantined_with_codes(tmp_path, config, capsys):
    good = fleet_stream(devices=2, steps=3)
    bad = [event for _, _, event in invalid_cases()]
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in good + bad) + b"{this is not json\n")
    code, _, quarantine = replay(tmp_path, str(path), config)
    assert code == 0
    codes = sorted(r["code"] for r in quarantine)
    expected = sorted([c for _, c, _ in invalid_cases()] + ["MALFORMED_JSON"])
    assert codes == expected
    assert "MALFORMED_JSON 1" in capsys.readouterr().out


def test_transient_failures_are_redelivered_after_the_stream(tmp_path, capsys):
    config = tmp_path / "retry.yaml"
    config.write_text(f"topics: ['{factory.TOPIC}']\nmissing_twin: retry\n")
    # Telemetry first, its DeviceCreated at the very end of the stream: the broker must redeliver it.
    events = [factory.telemetry("late", {"temperature": 4.0}, second=5),
              *(factory.telemetry(f"x{i}", {"temperature": 1.0}) for i in range(3)),
              factory.lifecycle("late", second=1)]
    code, twins, _ = replay(tmp_path, write_jsonl(tmp_path / "e.jsonl", events), str(config), "--batch-size", "1")
    assert code == 0
    assert [t["$dtId"] for t in twins] == ["late"] and twins[0]["temperature"] == 4.0
    out = capsys.readouterr().out
    # The late one is redelivered once; the three x* four times each (5 attempts) and then given up as "retry".
    assert "retry 3, retried 13" in out and "TWIN_NOT_READY 3" in out


def test_usage_errors_exit_non_zero(tmp_path, config, capsys):
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["replay", write_jsonl(tmp_path / "e.jsonl", []), "--batch-size", "0"]) == 2
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("missing_twin: maybe\n")
    assert main(["replay", write_jsonl(tmp_path / "e.jsonl", []), "--config", str(bad_config)]) == 2
    assert "missing_twin" in capsys.readouterr().err


def test_runs_as_a_module(tmp_path, config):
    events = write_jsonl(tmp_path / "e.jsonl", fleet_stream(devices=2, steps=2))
    done = subprocess.run([sys.executable, "-m", "twinbridge", "replay", events, "--config", config],
                          cwd=APP_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "twins" in done.stdout


def test_the_configs_filters_apply_as_in_the_door(tmp_path, capsys):
    config = tmp_path / "filtered.yaml"
    config.write_text(f"topics: ['{factory.TOPIC}']\n"
                      "filters:\n"
                      "  subscription:\n"
                      "    includedEventTypes: [Microsoft.Devices.DeviceCreated, Microsoft.Devices.DeviceTelemetry]\n"
                      "  routing_query: '$body.temperature > 20'\n")
    events = [factory.lifecycle("d1"), factory.connection("d1", 1, second=1),
              factory.telemetry("d1", {"temperature": 25.0}, second=2),
              factory.telemetry("d1", {"temperature": 10.0}, second=3)]
    code, twins, _ = replay(tmp_path, write_jsonl(tmp_path / "f.jsonl", events), str(config))
    assert code == 0
    assert [{k: v for k, v in t.items() if not k.startswith("$")} for t in twins] == [{"temperature": 25.0}]
    assert "filtered 2" in capsys.readouterr().out
