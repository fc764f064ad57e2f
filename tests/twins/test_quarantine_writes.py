"""The pipeline's quarantine writes are concurrent and end with the invocation's budget (issue 15 §4).

Before: one write after the other, each waited for without a limit: N poison events against a quarantine that takes
t per write cost N × t (beyond the budget the batch came again and again), and a quarantine that never answers held
the door forever.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.errors import Code, PermanentError, TransientError
from shared.outcome import Outcome
from shared.ports import QuarantineRecord
from shared.settings.app_config import AppConfig
from shared.wiring import build_pipeline, embedded_twin_store
from tests.support import event_factory as factory
from tests.support.rig import CATALOG


class SlowQuarantine(MemoryQuarantine):
    """A quarantine that does I/O (not in-process) and takes ``delay`` per write; ``hang`` blocks until released."""

    in_process = False

    def __init__(self, delay: float = 0.0, hang: bool = False) -> None:
        super().__init__()
        self.delay = delay
        self.release = threading.Event()
        if not hang:
            self.release.set()
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()

    def put(self, record: QuarantineRecord) -> None:
        with self._lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            self.release.wait()
            super().put(record)
        finally:
            with self._lock:
                self.in_flight -= 1


def poison(i: int) -> dict[str, Any]:
    event = factory.connection(f"bad{i}", 1)
    event["eventTime"] = "garbage"  # SCHEMA_INVALID: quarantined
    return event


def pipeline_over(quarantine: SlowQuarantine, budget: float, max_concurrency: int = 4) -> Any:
    config = AppConfig.from_data({"topics": [factory.TOPIC]})
    graph = embedded_twin_store(CATALOG)
    pipeline = build_pipeline(config, graph, catalog=CATALOG, state=MemoryStateStore(), quarantine=quarantine,
                              max_concurrency=max_concurrency)
    pipeline.budget_seconds = budget
    return pipeline, graph


def test_poison_events_are_quarantined_concurrently_within_the_budget() -> None:
    quarantine = SlowQuarantine(delay=0.5)
    pipeline, graph = pipeline_over(quarantine, budget=3.0, max_concurrency=4)
    batch = [factory.connection("good", 1), *(poison(i) for i in range(12))]  # 12 × 0.5 s one by one: 6 s
    started = time.monotonic()
    report = pipeline.process(batch)
    took = time.monotonic() - started
    assert took < 3.0, took  # 3 rounds of 4 at once: ~1.5 s
    assert quarantine.most_in_flight == 4  # bounded by max_concurrency
    assert report.counts()["quarantined"] == 12 and len(quarantine) == 12
    assert {r.code for r in report.results if r.outcome is Outcome.QUARANTINED} == {Code.SCHEMA_INVALID}
    assert graph.get_twin("good") is not None


def test_a_quarantine_that_never_answers_ends_with_the_budget() -> None:
    quarantine = SlowQuarantine(hang=True)
    pipeline, graph = pipeline_over(quarantine, budget=1.0)
    outcome: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        try:
            pipeline.process([factory.connection("good", 1), poison(1), poison(2)])
        except TransientError as exc:
            outcome["error"] = exc
        outcome["took"] = time.monotonic() - started

    door = threading.Thread(target=run, daemon=True)
    door.start()
    door.join(10)
    try:
        assert not door.is_alive(), "the pipeline waited on a hung quarantine past its budget"
        assert outcome["took"] < 1.0 + 0.5, outcome
        assert outcome["error"].code is Code.TIME_BUDGET_SPENT  # the batch comes again: nothing is lost
        assert graph.get_twin("good") is not None  # its neighbour was written meanwhile (a duplicate next time)
    finally:
        quarantine.release.set()


def test_a_failed_quarantine_write_makes_the_batch_come_again() -> None:
    class Down(SlowQuarantine):
        def put(self, record: QuarantineRecord) -> None:
            raise TransientError(Code.STATE_UNAVAILABLE, "quarantine store unreachable")

    pipeline, _ = pipeline_over(Down(), budget=5.0)
    with pytest.raises(TransientError) as caught:
        pipeline.process([factory.connection("good", 1), poison(1)])
    assert caught.value.code is Code.STATE_UNAVAILABLE


def test_rejected_inputs_are_written_concurrently_within_the_budget() -> None:
    """reject_all: what the Event Hubs door refuses before the pipeline (it had no budget at all before)."""
    quarantine = SlowQuarantine(delay=0.5)
    pipeline, _ = pipeline_over(quarantine, budget=3.0, max_concurrency=8)
    refused = [(i, {"message": i}, PermanentError.at(Code.BODY_NOT_JSON, "data.body", "not JSON")) for i in range(8)]
    started = time.monotonic()
    results = pipeline.reject_all(refused)
    assert time.monotonic() - started < 1.5  # 8 at once, ~0.5 s (one by one: 4 s)
    assert [r.index for r in results] == list(range(8)) and len(quarantine) == 8
