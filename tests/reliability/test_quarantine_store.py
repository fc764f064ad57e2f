"""Quarantine stores (memory, JSON Lines, Blob on Azurite): idempotent put, list(since), get, delete; and the
``quarantine`` operator commands replaying records through a pipeline built from the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from shared.adapters.quarantine.blob import BlobQuarantine
from shared.adapters.quarantine.local import JsonlQuarantine, MemoryQuarantine
from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.errors import Code, PermanentError
from shared.quarantine_record import build_record
from shared.wiring import embedded_twin_store
from tests.support import event_factory as factory
from twinbridge.azurite import Azurite
from twinbridge.cli import main
from twinbridge.commands.quarantine import ReadableQuarantine

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "jsonl", "blob"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ReadableQuarantine:
    if request.param == "memory":
        return MemoryQuarantine()
    if request.param == "jsonl":
        return JsonlQuarantine(tmp_path / "q.jsonl")
    request.applymarker(pytest.mark.integration)
    azurite: Azurite = request.getfixturevalue("azurite")
    return BlobQuarantine.from_connection_string(azurite.connection_string, "q" + request.getfixturevalue(
        "table_name"))


def record(n: int, minutes: int, code: Code = Code.SCHEMA_INVALID, event: Any = None):  # type: ignore[no-untyped-def]
    event = event if event is not None else factory.telemetry(f"dev-{n}", {"temperature": n}, second=n)
    return build_record(event, PermanentError.at(code, "data.body", f"bad {n}"), now=T0 + timedelta(minutes=minutes))


def test_put_is_idempotent_and_readable(store: ReadableQuarantine) -> None:
    first = record(1, 0)
    store.put(first)
    store.put(record(1, 5))  # the same event failing the same way, redelivered later
    store.put(record(2, 10))
    listed = store.list()
    assert [r.record_id for r in listed] == [first.record_id, record(2, 10).record_id]
    got = store.get(first.record_id)
    assert got is not None and got.event == first.event and got.code == "SCHEMA_INVALID"
    assert [r.record_id for r in store.list(T0 + timedelta(minutes=7))] == [record(2, 0).record_id]
    assert store.delete(first.record_id) is True
    assert store.delete(first.record_id) is False
    assert store.get(first.record_id) is None
    assert [r.record_id for r in store.list()] == [record(2, 0).record_id]


@pytest.mark.integration
def test_blob_keeps_a_whole_large_event(azurite: Azurite, table_name: str) -> None:
    store = BlobQuarantine.from_connection_string(azurite.connection_string, "q" + table_name)
    big = factory.telemetry("dev-big", {"blob": "x" * 900_000})
    rec = record(9, 0, Code.EVENT_TOO_LARGE, big)
    store.put(rec)
    got = store.get(rec.record_id)
    assert got is not None and got.event == big and len(store) == 1


def _write_config(path: Path, **data: Any) -> str:
    path.write_bytes(orjson.dumps(data))
    return str(path)


@pytest.mark.parametrize("kind", ["jsonl", "blob"])
def test_replay_removes_what_now_succeeds(kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"TWINBRIDGE_TWIN_DB": str(tmp_path / "twins.db"), "TWINBRIDGE_QUARANTINE": kind}
    if kind == "blob":
        request.applymarker(pytest.mark.integration)
        azurite: Azurite = request.getfixturevalue("azurite")
        env |= {"AzureWebJobsStorage": azurite.connection_string,
                "TWINBRIDGE_QUARANTINE_CONTAINER": "q" + request.getfixturevalue("table_name")}
    else:
        env["TWINBRIDGE_QUARANTINE_FILE"] = str(tmp_path / "q.jsonl")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("TWINBRIDGE_ALLOWED_TOPICS", raising=False)
    from shared.settings.environment import Settings
    from shared.wiring import build_app

    # 1. A deployment that forgot its topic quarantines everything (plus one truly broken event).
    wrong = _write_config(tmp_path / "wrong.json", topics=["/subscriptions/other/iothubs/elsewhere"])
    monkeypatch.setenv("TWINBRIDGE_CONFIG", wrong)
    app = build_app(Settings.from_env())
    events = [factory.lifecycle("dev-1", second=1), factory.connection("dev-1", 5, second=2),
              factory.telemetry("dev-1", {"temperature": 21.5}, second=3),
              factory.telemetry("dev-2", {"temperature": 7.0}, second=4)]
    broken = {"id": "broken-1", "topic": factory.TOPIC, "eventType": "Microsoft.Devices.DeviceTelemetry"}
    report = app.pipeline.process([*events, broken])
    assert report.counts()["quarantined"] == 5
    assert main(["quarantine", "list"]) == 0
    listing = capsys.readouterr().out.strip().splitlines()
    assert len(listing) == 5 and sum("TOPIC_NOT_ALLOWED" in line for line in listing) == 4
    first_id = listing[0].split()[0]
    assert main(["quarantine", "show", first_id]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["record_id"] == first_id and shown["event"] == "<omitted: use --event>"

    # 2. Fixed config: dev-2 has no DeviceCreated and the fixed config quarantines such telemetry (new code).
    fixed = _write_config(tmp_path / "fixed.json", topics=[factory.TOPIC], missing_twin="quarantine")
    assert main(["quarantine", "replay", "--config", fixed]) == 0
    summary = capsys.readouterr().out
    print(summary)
    assert "replayed 5: resolved 3, still quarantined 1, re-quarantined with a new code 1, transient 0" in summary
    monkeypatch.setenv("TWINBRIDGE_CONFIG", fixed)
    left = build_app(Settings.from_env()).quarantine
    codes = sorted(r.code for r in left.list())  # type: ignore[attr-defined]
    assert codes == ["SCHEMA_INVALID", "TWIN_NOT_FOUND"]
    twins = embedded_twin_store(ModelCatalog.load_dir(Path("models")), tmp_path / "twins.db")
    twin = twins.get_twin("dev-1")
    assert twin is not None and twin["temperature"] == 21.5 and twin["connectionState"] == "Connected"
    assert twins.get_twin("dev-2") is None

    # 3. Replaying again changes nothing; --since in the future selects nothing.
    assert main(["quarantine", "replay", "--config", fixed]) == 0
    assert "replayed 2: resolved 0, still quarantined 2" in capsys.readouterr().out
    assert main(["quarantine", "replay", "--since", "2999-01-01T00:00:00Z"]) == 0
    assert "replayed 0" in capsys.readouterr().out


def test_unreadable_quarantine_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWINBRIDGE_QUARANTINE", "nowhere")
    assert main(["quarantine", "list"]) == 2

