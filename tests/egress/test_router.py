"""The router: at-least-once without duplicates, transient vs permanent outcomes, quarantine with source=egress."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import orjson
import pytest

from shared.adapters.forwarding.memory import MemoryForwardingStore
from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.sinks.jsonl_file import JsonlFileSink
from shared.egress.config import load_egress
from shared.egress.ports import SENT, Delivery, Outgoing, Status
from shared.egress.router import EgressRouter
from shared.errors import Code, PermanentError, TransientError
from shared.outcome import Outcome
from tests.egress import adt

UPDATE = "type = 'Microsoft.DigitalTwins.Twin.Update'"


class ScriptedSink:
    """A Sink (the port) whose endpoint fails for the message ids it is told to, transiently or for good."""

    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.down: set[str] = set()
        self.refuse: set[str] = set()

    def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        out: list[Delivery] = []
        for n, m in enumerate(messages):
            if m.message_id in self.down:
                error = TransientError(Code.SINK_UNAVAILABLE, "endpoint down")
                return out + [Delivery(Status.RETRY, error)] * (len(messages) - n)
            if m.message_id in self.refuse:
                out.append(Delivery(Status.REJECTED, PermanentError(Code.DELIVERY_REJECTED, "no")))
                continue
            self.delivered.append(m.message_id)
            out.append(SENT)
        return out

    def close(self) -> None:
        pass


def _router(tmp_path: Path) -> tuple[EgressRouter, ScriptedSink, MemoryQuarantine, MemoryForwardingStore]:
    config = load_egress({
        "endpoints": {"bus": {"kind": "servicebus", "namespace": "ns", "topic": "t"},
                      "file": {"kind": "file", "path": str(tmp_path / "out.jsonl")}},
        "routes": [{"name": "updates", "filter": UPDATE, "endpoint": "bus"},
                   {"name": "props", "filter": UPDATE, "endpoint": "bus", "transform": "property-changes"},
                   {"name": "all", "filter": "true", "endpoint": "file"}],
    })
    sink, quarantine, store = ScriptedSink(), MemoryQuarantine(), MemoryForwardingStore()
    router = EgressRouter(config, {"bus": sink, "file": JsonlFileSink(tmp_path / "out.jsonl")}, store, quarantine)
    return router, sink, quarantine, store


def _file(tmp_path: Path) -> list[str]:
    return [orjson.loads(line)["message_id"] for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]


def test_a_redelivered_notification_is_not_forwarded_twice(tmp_path: Path) -> None:
    router, sink, _, store = _router(tmp_path)
    batch = [adt.twin_update("room-1", [adt.replace("/T", 1), adt.replace("/H", 2)], nid="n1"),
             adt.twin_lifecycle("room-2", nid="c2")]
    first = router.process(batch)
    assert [r.routes for r in first.results] == [["updates", "props", "all"], ["all"]]
    assert [r.outcome for r in first.results] == [Outcome.APPLIED, Outcome.APPLIED]
    assert sink.delivered == ["n1:updates", "n1:props:0", "n1:props:1"]
    assert _file(tmp_path) == ["n1:all", "c2:all"]
    again = router.process(batch)  # Event Grid / Event Hubs redelivery of the same notifications
    assert [r.outcome for r in again.results] == [Outcome.DUPLICATE, Outcome.DUPLICATE]
    assert [r.skipped for r in again.results] == [4, 1]
    assert sink.delivered == ["n1:updates", "n1:props:0", "n1:props:1"] and len(_file(tmp_path)) == 2
    assert len(store) == 5


def test_the_same_notification_twice_in_one_batch_and_through_both_schemas(tmp_path: Path) -> None:
    router, sink, _, _ = _router(tmp_path)
    ce = adt.twin_update("room-1", [adt.replace("/T", 1)], nid="n1")
    report = router.process([ce, ce])
    assert [r.outcome for r in report.results] == [Outcome.APPLIED, Outcome.DUPLICATE]
    assert sink.delivered == ["n1:updates", "n1:props:0"]


def test_transient_failure_raises_after_the_successes_are_recorded(tmp_path: Path) -> None:
    router, sink, _, store = _router(tmp_path)
    batch = [adt.twin_update(f"room-{i}", [adt.replace("/T", i)], nid=f"n{i}") for i in range(3)]
    sink.down = {"n1:props:0"}
    report = router.process(batch)
    assert [r.outcome for r in report.results] == [Outcome.APPLIED, Outcome.RETRY, Outcome.RETRY]
    with pytest.raises(TransientError) as info:
        report.raise_if_transient()
    assert info.value.code is Code.SINK_UNAVAILABLE
    assert sink.delivered == ["n0:updates", "n0:props:0", "n1:updates"]
    assert len(_file(tmp_path)) == 3  # the other endpoint is independent: all three went out, and are recorded
    sink.down = set()
    redelivery = router.process(batch)
    redelivery.raise_if_transient()
    assert sink.delivered == ["n0:updates", "n0:props:0", "n1:updates", "n1:props:0", "n2:updates", "n2:props:0"]
    assert len(_file(tmp_path)) == 3 and len(store) == 9


def test_permanent_problems_are_quarantined_and_the_batch_goes_on(tmp_path: Path) -> None:
    router, sink, quarantine, _ = _router(tmp_path)
    broken = adt.twin_update("room-9", [adt.replace("/T", 9)], nid="bad")
    del broken["data"]["modelId"]
    sink.refuse = {"n2:updates"}
    report = router.process([broken, adt.twin_update("room-2", [adt.replace("/T", 2)], nid="n2")])
    report.raise_if_transient()  # nothing transient
    assert [r.outcome for r in report.results] == [Outcome.QUARANTINED, Outcome.QUARANTINED]
    assert (report.results[0].code, report.results[0].path) == ("SCHEMA_INVALID", "data.modelId")
    records = sorted(quarantine, key=lambda r: r.code)
    assert [(r.code, r.source, r.event_id) for r in records] == [("DELIVERY_REJECTED", "egress", "n2"),
                                                                 ("SCHEMA_INVALID", "egress", "bad")]
    assert records[0].extra == {"route": "updates", "endpoint": "bus", "message_id": "n2:updates"}
    assert records[0].twin_id == "room-2" and records[0].event["id"] == "n2"
    assert sink.delivered == ["n2:props:0"]


def test_forwarding_store_down_sends_nothing_and_raises(tmp_path: Path) -> None:
    router, sink, _, _ = _router(tmp_path)

    class DownStore:
        def seen(self, keys: Sequence[str]) -> set[str]:
            raise TransientError(Code.FORWARDING_UNAVAILABLE, "table down")

        def record(self, keys: Sequence[str]) -> None:
            raise AssertionError("nothing was sent")

    router.store = DownStore()
    report = router.process([adt.twin_update("room-1", [adt.replace("/T", 1)])])
    with pytest.raises(TransientError):
        report.raise_if_transient()
    assert sink.delivered == [] and not (tmp_path / "out.jsonl").exists()


def test_memory_store_forgets_after_the_retention() -> None:
    now = [1000.0]
    store = MemoryForwardingStore(retention_seconds=25 * 3600, clock=lambda: now[0])
    store.record(["a"])
    now[0] += 25 * 3600 - 1
    assert store.seen(["a", "b"]) == {"a"}
    now[0] += 2
    assert store.seen(["a"]) == set()


def test_amqp_batches_go_through_the_same_router(tmp_path: Path) -> None:
    router, sink, quarantine, _ = _router(tmp_path)
    good = adt.to_amqp(adt.twin_update("room-1", [adt.replace("/T", 1)], nid="n1"), "cloudEvents_")
    bad = ({"cloudEvents:id": "x", "cloudEvents:type": "Microsoft.DigitalTwins.Twin.Update"}, b"{}")
    report = router.process_amqp([good, bad])
    assert [r.outcome for r in report.results] == [Outcome.APPLIED, Outcome.QUARANTINED]
    assert sink.delivered == ["n1:updates", "n1:props:0"]
    [record] = list(quarantine)
    assert record.source == "egress" and record.event["properties"]["cloudEvents:id"] == "x"
