"""Dead-letters → the quarantine (shared/doors/dead_letters.py, functions/collect_dead_letters.py; issue 15 §5)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
from azure.eventgrid import EventGridEvent

import function_app
from functions import collect_dead_letters
from shared.adapters.quarantine.local import MemoryQuarantine
from shared.doors.dead_letters import FolderDeadLetters, collect, records_from_blob
from shared.errors import Code
from tests.support import event_factory as factory
from twinbridge.cli import main
from twinbridge.localhost.runtime import indexed
from twinbridge.simulator.publisher import LocalEventGridPublisher, RetryPolicy

FACTS = {"deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 30,
         "lastDeliveryOutcome": "Probation", "lastHttpStatusCode": 503,
         "publishTime": "2026-11-23T10:00:00.1234567Z", "lastDeliveryAttemptTime": "2026-11-24T10:00:00.7654321Z"}


def _blob(*events):
    return orjson.dumps([{**event, **FACTS} for event in events])


def test_each_dead_lettered_event_becomes_a_record_with_event_grids_facts():
    first, second = factory.connection("d1", 1), factory.lifecycle("d2")
    records = records_from_blob("TWINBRIDGE-SUB/2026/11/24/10/x.json", _blob(first, second))
    assert [r.code for r in records] == [Code.DEAD_LETTERED] * 2
    assert records[0].event == first and records[1].event == second  # as published: replayable
    assert records[0].extra == {**FACTS, "deadLetterBlob": "TWINBRIDGE-SUB/2026/11/24/10/x.json"}
    assert "MaxDeliveryAttemptsExceeded" in records[0].message and records[0].event_id == first["id"]
    again = records_from_blob("other.json", _blob(first))
    assert again[0].record_id == records[0].record_id  # collected twice: one record


def test_cloudevents_dead_letters_keep_the_facts_as_lowercase_extensions():
    event = factory.to_cloudevent(factory.connection("d1", 1))
    [record] = records_from_blob("b.json", orjson.dumps([{**event, "deadletterreason": "TimeToLiveExceeded",
                                                         "deliveryattempts": 3}]))
    assert record.event == event
    assert record.extra["deadLetterReason"] == "TimeToLiveExceeded" and record.extra["deliveryAttempts"] == 3


def test_a_blob_that_is_not_json_is_quarantined_whole(tmp_path):
    (tmp_path / "SUB").mkdir()
    (tmp_path / "SUB" / "bad.json").write_bytes(b"{not json")
    quarantine = MemoryQuarantine()
    report = collect(FolderDeadLetters(tmp_path), quarantine)
    assert report.records == 1 and [r.event for r in quarantine] == ["{not json"]
    assert not (tmp_path / "SUB" / "bad.json").exists()


def test_a_failing_quarantine_leaves_the_blob_for_the_next_run(tmp_path):
    (tmp_path / "a.json").write_bytes(_blob(factory.connection("d1", 1)))

    class Down(MemoryQuarantine):
        def put(self, record):
            raise RuntimeError("down")

    with pytest.raises(RuntimeError):
        collect(FolderDeadLetters(tmp_path), Down())
    assert (tmp_path / "a.json").exists()
    assert collect(FolderDeadLetters(tmp_path), MemoryQuarantine()).records == 1


def test_the_door_is_a_registered_timer():
    door = indexed(function_app.app)["collect_dead_letters"]
    assert door.trigger["type"] == "timerTrigger" and door.trigger["schedule"] == collect_dead_letters.SCHEDULE


def test_the_local_publishers_dead_letters_are_listed_and_replayed(tmp_path, monkeypatch, capsys):
    raw = factory.connection("d7", 1)
    event = EventGridEvent(subject=raw["subject"], event_type=raw["eventType"], data=raw["data"],
                           data_version=raw["dataVersion"], topic=raw["topic"], id=raw["id"],
                           event_time=datetime(2026, 11, 23, 10, tzinfo=UTC))
    folder = tmp_path / "deadletter"
    publisher = LocalEventGridPublisher("http://127.0.0.1:9/nobody-listens", deadletter_dir=folder,
                                        policy=RetryPolicy(max_attempts=1, time_scale=0.001), timeout=2)
    try:
        publisher.publish([event])
        assert publisher.drain(20)
    finally:
        publisher.close()
    assert publisher.stats.dead_lettered == 1
    monkeypatch.setenv("TWINBRIDGE_QUARANTINE_FILE", str(tmp_path / "quarantine.jsonl"))
    monkeypatch.setenv("TWINBRIDGE_ALLOWED_TOPICS", factory.TOPIC)
    monkeypatch.delenv("TWINBRIDGE_CONFIG", raising=False)
    assert main(["quarantine", "collect-dead-letters", "--folder", str(folder)]) == 0
    assert list(folder.rglob("*.json")) == []
    assert main(["quarantine", "list"]) == 0
    listed = capsys.readouterr().out
    assert "DEAD_LETTERED" in listed and "1 event(s) moved" in listed
    assert main(["quarantine", "replay"]) == 0
    assert "resolved 1" in capsys.readouterr().out


def test_a_blob_with_a_huge_integer_and_a_broken_element_keeps_every_event():
    """The shared element reader (shared/ingest/json_elements.py): a value beyond 64 bits stays an exact integer
    (orjson.loads rounded it to a float), and one broken element neither takes the good ones down nor is lost."""
    first, second = factory.connection("d1", 1), factory.lifecycle("d2")
    huge = 2**64 + 1
    first["data"]["reading"] = huge
    good = [json.dumps({**event, **FACTS}).encode() for event in (first, second)]  # orjson refuses 2**64 + 1
    data = b"[" + good[0] + b",\n{\"id\": \"cut\", \"data\": oops},\n" + good[1] + b"]"
    records = records_from_blob("SUB/x.json", data)
    assert [r.code for r in records] == [Code.DEAD_LETTERED] * 3
    assert records[0].event["data"]["reading"] == str(huge)  # exact (json_safe shows it as text)
    assert records[1].event == second and records[1].extra["deadLetterReason"] == FACTS["deadLetterReason"]
    kept = records[2]
    assert kept.event == data.decode() and kept.extra == {"deadLetterBlob": "SUB/x.json"}
    assert [p["message"].split(":")[0] for p in kept.problems] == ["line 2"]
