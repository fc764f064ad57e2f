"""The local run's side of the explorer: its quarantine read and replayed as `quarantine replay` does, its host."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from shared.adapters.quarantine.local import JsonlQuarantine
from shared.settings.environment import Settings
from shared.wiring import build_app
from tests.support import event_factory as factory
from twinbridge.cli import main
from twinbridge.explorer.local import LocalRun, LocalRunError

OTHER_TOPIC = factory.TOPIC.replace("FACTORY-HUB", "LAB-HUB")


def settings_file(path: Path, folder: Path, topics: str) -> Path:
    values = {"TWINBRIDGE_ALLOWED_TOPICS": topics, "TWINBRIDGE_QUARANTINE_FILE": str(folder / "quarantine.jsonl"),
              "TWINBRIDGE_TWIN_DB": str(folder / "twins.db"), "TWINBRIDGE_STATE_STORE": "memory"}
    path.write_bytes(orjson.dumps({"IsEncrypted": False, "Values": values}))
    return path


def quarantine_two(folder: Path) -> list[str]:
    """Two devices of a hub the app does not allow yet: two TOPIC_NOT_ALLOWED records, as the host writes them."""
    app = build_app(Settings.from_env({"TWINBRIDGE_ALLOWED_TOPICS": factory.TOPIC,
                                       "TWINBRIDGE_QUARANTINE_FILE": str(folder / "quarantine.jsonl"),
                                       "TWINBRIDGE_TWIN_DB": str(folder / "other.db")}))
    events = []
    for device in ("lab-01", "lab-02"):
        event = factory.lifecycle(device, second=1)
        event["topic"] = OTHER_TOPIC
        events.append(event)
    app.pipeline.process(events)
    app.twins.close()  # type: ignore[attr-defined]
    return sorted(r.record_id for r in JsonlQuarantine(folder / "quarantine.jsonl").list())


def test_records_are_listed_with_code_field_path_and_excerpt(tmp_path: Path) -> None:
    ids = quarantine_two(tmp_path)
    run = LocalRun(settings_file(tmp_path / "s.json", tmp_path, factory.TOPIC))
    try:
        records = run.quarantine()
    finally:
        run.close()
    assert sorted(r["recordId"] for r in records) == ids
    first = records[0]
    assert first["code"] == "TOPIC_NOT_ALLOWED" and first["replayable"] is True
    assert [p["path"] for p in first["problems"]] == ["topic"]
    assert "lab-0" in first["excerpt"] and "event" not in first  # the whole event stays on the server


def test_replay_of_one_record_leaves_the_others(tmp_path: Path) -> None:
    ids = quarantine_two(tmp_path)
    run = LocalRun(settings_file(tmp_path / "s.json", tmp_path, f"{factory.TOPIC},{OTHER_TOPIC}"))
    try:
        summary = run.replay([ids[0]])
        assert (summary["replayed"], summary["resolved"]) == (1, 1)
        assert [r["recordId"] for r in run.quarantine()] == [ids[1]]
        assert run.replay(None)["resolved"] == 1
        assert run.quarantine() == []
    finally:
        run.close()


def test_replay_without_the_fix_keeps_the_record(tmp_path: Path) -> None:
    ids = quarantine_two(tmp_path)
    run = LocalRun(settings_file(tmp_path / "s.json", tmp_path, factory.TOPIC))
    try:
        summary = run.replay(None)
        assert (summary["replayed"], summary["stillQuarantined"], summary["resolved"]) == (2, 2, 0)
        assert sorted(r["recordId"] for r in run.quarantine()) == ids
    finally:
        run.close()


def test_without_settings_or_host_it_says_what_to_pass(tmp_path: Path) -> None:
    with pytest.raises(LocalRunError, match="--settings"):
        LocalRun().quarantine()
    with pytest.raises(LocalRunError, match="no settings file"):
        LocalRun(tmp_path / "missing.json").quarantine()
    for name, content, why in (("broken.json", b"{", "is not valid JSON"),
                               ("encrypted.json", b'{"IsEncrypted": true, "Values": {}}', "is encrypted")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(LocalRunError, match=why) as refused:
            LocalRun(tmp_path / name).quarantine()  # the host's reader refuses it; the explorer says why
        assert refused.value.code == "SettingsInvalid"
    with pytest.raises(LocalRunError, match="--host"):
        LocalRun().stats()
    with pytest.raises(LocalRunError) as unreachable:
        LocalRun(host="http://127.0.0.1:9").stats()
    assert unreachable.value.code == "HostUnreachable"


def test_explore_command_refuses_missing_or_unsafe_endpoints(monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("ADT_URL", raising=False)
    assert main(["explore"]) == 2
    assert "--adt" in capsys.readouterr().err
    assert main(["explore", "--adt", "https://x.api.weu.digitaltwins.azure.net", "--credential", "static"]) == 2
    assert "only sent to a loopback URL" in capsys.readouterr().err
    assert main(["explore", "--adt", "https://127.0.0.1:1", "--poll", "0"]) == 2
