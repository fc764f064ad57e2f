"""R4–R6 under the real DigitalTwinsClient and azure-core RetryPolicy, with a fault-injecting transport.

Each test drives the whole pipeline (intake → shadow → conditional twin write) against ``FaultTransport``: no
network, no real sleeping (a fake clock), and the ADT side has real ETag semantics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.twins.adt import RETRY_SETTINGS, AdtTwinStore, retry_policy
from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.errors import Code
from shared.outcome import Outcome
from shared.settings.app_config import AppConfig
from shared.twins.pipeline import BatchReport
from shared.wiring import build_pipeline
from tests.reliability.figures import report
from tests.support import event_factory as factory
from tests.support.fake_adt import FakeCredential
from tests.support.fault_transport import (
    FaultTransport,
    apply_then_timeout,
    race,
    throttle,
    timeout_before_apply,
    unavailable,
)

MODELS = Path(__file__).resolve().parents[2] / "models"
MODEL = "dtmi:twinbridge:IoTDevice;1"
INVOCATION_BUDGET = 20.0  # seconds of (fake) time one delivery may take: Event Grid waits 30 s


class AdtInstance:
    """One function instance: the pipeline over the real ADT client over the fault transport."""

    def __init__(self, transport: FaultTransport) -> None:
        self.transport = transport
        self.twins = AdtTwinStore.from_url("https://adt.test", FakeCredential(), transport=transport,
                                           retry_policy=retry_policy(clock=transport.clock),
                                           read_timeout=RETRY_SETTINGS["read_timeout"])
        transport.read_timeout = RETRY_SETTINGS["read_timeout"]  # a lost response costs what it would in Azure
        self.state = MemoryStateStore()
        self.quarantine = MemoryQuarantine()
        self.pipeline = build_pipeline(AppConfig.from_data({"topics": [factory.TOPIC]}), self.twins,
                                       catalog=ModelCatalog.load_dir(MODELS), state=self.state,
                                       quarantine=self.quarantine, max_concurrency=1)
        self.durations: list[float] = []

    def deliver(self, events: list[dict[str, Any]]) -> BatchReport:
        start = self.transport.now
        result = self.pipeline.process(events)
        self.durations.append(self.transport.now - start)
        return result

    def twin(self, twin_id: str = "dev-1") -> dict[str, Any]:
        return self.transport.twins[twin_id]

    def assert_no_blind_write(self) -> None:
        for request in self.transport.writes("PATCH"):
            assert request.headers.get("If-Match", "*") != "*", f"PATCH without a real If-Match: {request}"
        for request in self.transport.writes("PUT"):
            assert request.headers.get("If-None-Match") == "*", f"PUT that could overwrite: {request}"


def rig_with_twin(*faults: Any) -> AdtInstance:
    transport = FaultTransport()
    rig = AdtInstance(transport)
    first = rig.deliver([factory.lifecycle("dev-1", second=1), factory.connection("dev-1", 1, second=1)])
    assert first.counts()["applied"] == 2
    transport.script = list(faults)
    return rig


def outcomes(result: BatchReport) -> list[str]:
    return [r.outcome.value for r in result.results]


def test_429_honours_retry_after_then_succeeds() -> None:
    rig = rig_with_twin(throttle(3, method="PATCH", times=2))
    result = rig.deliver([factory.telemetry("dev-1", {"temperature": 21.5}, second=5)])
    assert outcomes(result) == ["applied"]
    assert rig.transport.sleeps[:2] == [3.0, 3.0]  # Retry-After, exactly, twice
    assert rig.twin()["temperature"] == 21.5
    assert rig.durations[-1] < INVOCATION_BUDGET
    rig.assert_no_blind_write()
    report("R4 429 honoured", injected=rig.transport.injected, sleeps=rig.transport.sleeps,
           invocation_seconds=round(rig.durations[-1], 2))


@pytest.mark.parametrize("retry_after", [5, 60])
def test_429_past_the_budget_is_transient_then_redelivery_applies(retry_after: int) -> None:
    rig = rig_with_twin(throttle(retry_after, method="PATCH", times=50))
    event = factory.telemetry("dev-1", {"temperature": 30.0}, second=5)
    result = rig.deliver([event])
    assert outcomes(result) == ["retry"] and result.results[0].code == Code.ADT_THROTTLED
    assert all(s >= retry_after for s in rig.transport.sleeps)  # whenever it waited, it waited as told
    assert rig.durations[-1] <= INVOCATION_BUDGET
    rig.transport.script.clear()  # the throttling ends; Event Grid redelivers
    again = rig.deliver([event])
    # The shadow took the event before the write failed, so the redelivery is a duplicate that repairs the twin.
    assert outcomes(again) == ["duplicate"] and rig.twin()["temperature"] == 30.0  # not lost
    assert rig.transport.applied_patches["dev-1"] == 1  # the set-up created the twin (PUT); this change: once
    rig.assert_no_blind_write()
    report(f"R4 429 Retry-After {retry_after}s past budget", sleeps=rig.transport.sleeps,
           invocation_seconds=round(rig.durations[-2], 2), outcome_first="retry", twin_after_redelivery="correct")


def test_503_is_retried_by_azure_core_then_succeeds() -> None:
    rig = rig_with_twin(unavailable(503, method="PATCH", times=2), unavailable(503, method="GET", times=1))
    result = rig.deliver([factory.telemetry("dev-1", {"humidity": 40.0}, second=5)])
    assert outcomes(result) == ["applied"] and rig.twin()["humidity"] == 40.0
    statuses = [r.status for r in rig.transport.requests if r.method == "PATCH"][-3:]
    assert statuses == [503, 503, 204]
    assert rig.durations[-1] < INVOCATION_BUDGET
    report("R6 503 retried", injected=rig.transport.injected, sleeps=rig.transport.sleeps,
           invocation_seconds=round(rig.durations[-1], 2))


def test_persistent_5xx_is_transient_within_budget() -> None:
    rig = rig_with_twin(unavailable(503, times=100))
    event = factory.connection("dev-1", 2, connected=False, second=9)
    result = rig.deliver([event])
    assert outcomes(result) == ["retry"] and result.results[0].code == Code.ADT_UNAVAILABLE
    with pytest.raises(Exception, match="redelivered"):
        result.raise_if_transient()
    assert rig.durations[-1] <= INVOCATION_BUDGET
    tries = sum(1 for r in rig.transport.requests if r.status == 503)
    rig.transport.script.clear()
    assert outcomes(rig.deliver([event])) == ["applied"]  # the first GET failed: nothing was recorded before
    assert rig.twin()["connectionState"] == "Disconnected"
    report("R6 persistent 503", attempts_before_giving_up=tries, invocation_seconds=round(rig.durations[-2], 2))


def test_patch_applied_then_timeout_is_resolved_by_rereading() -> None:
    rig = rig_with_twin(apply_then_timeout("PATCH"))
    result = rig.deliver([factory.telemetry("dev-1", {"temperature": 22.0, "co2": 410.0}, second=5)])
    assert outcomes(result) == ["applied"]
    assert rig.twin()["temperature"] == 22.0 and rig.twin()["co2"] == 410.0
    patches = rig.transport.writes("PATCH")
    assert [p.status for p in patches][-1] == "apply_then_timeout(204)"  # nothing was sent again
    assert rig.transport.applied_patches["dev-1"] == 1  # the set-up created the twin (PUT): applied exactly once
    last = rig.transport.requests[-1]
    assert last.method == "GET"  # resolved by reading the twin back
    assert rig.durations[-1] < INVOCATION_BUDGET
    rig.assert_no_blind_write()
    report("R6 apply-then-timeout (PATCH)", patches_applied_for_change=1,
           invocation_seconds=round(rig.durations[-1], 2))


def test_create_applied_then_timeout_creates_once() -> None:
    transport = FaultTransport([apply_then_timeout("PUT")])
    rig = AdtInstance(transport)
    result = rig.deliver([factory.lifecycle("dev-9", second=1), factory.telemetry("dev-9", {"co2": 1.5}, second=2)])
    assert outcomes(result) == ["applied", "applied"]
    puts = transport.writes("PUT")
    # azure-core repeats a PUT after a lost response; If-None-Match: * turns the repeat into a 412 (never a second
    # create), the adapter reports a conflict and the applier re-reads: the twin is there, nothing left to write.
    assert [p.status for p in puts] == ["apply_then_timeout(200)", 412]
    assert transport.requests[-1].method == "GET"
    assert transport.twins["dev-9"]["co2"] == 1.5
    rig.assert_no_blind_write()


def test_412_race_with_another_writer_loses_nothing() -> None:
    other = [{"op": "add", "path": "/firmwareVersion", "value": "2.0.1"},
             {"op": "replace", "path": "/connectionState", "value": "Disconnected"}]  # a stale blind writer
    rig = rig_with_twin(race(other, times=2))
    result = rig.deliver([factory.telemetry("dev-1", {"temperature": 19.0}, second=5)])
    assert outcomes(result) == ["applied"]
    twin = rig.twin()
    assert twin["firmwareVersion"] == "2.0.1"  # the other writer's change survived (no blind overwrite)
    assert twin["temperature"] == 19.0  # ours too (no lost update)
    assert twin["connectionState"] == "Connected"  # and the newer connection state was put back
    statuses = [p.status for p in rig.transport.writes("PATCH")]
    assert statuses.count(412) == 2 and statuses[-1] == 204
    rig.assert_no_blind_write()
    report("R5 412 races", races=rig.transport.injected.get("race", 0), patches_412=statuses.count(412),
           patches_total=len(statuses))


def test_get_lost_before_apply_is_retried() -> None:
    rig = rig_with_twin(timeout_before_apply("GET"))
    result = rig.deliver([factory.telemetry("dev-1", {"pressure": 1013.0}, second=5)])
    assert outcomes(result) == ["applied"] and rig.twin()["pressure"] == 1013.0
    assert rig.durations[-1] < INVOCATION_BUDGET


def test_fault_storm_many_events_no_loss_no_double_apply() -> None:
    """Every kind of fault, repeatedly, over a stream: redeliver until nothing is left to retry.

    Each delivery carries one device's events: twin groups of a batch run in parallel in production, so the time
    of one group is what an invocation takes (the fake clock is shared, so mixing devices would add them up).
    """
    transport = FaultTransport()
    rig = AdtInstance(transport)
    devices = [f"dev-{i}" for i in range(6)]
    rig.deliver([factory.lifecycle(d, second=1) for d in devices])
    queues: dict[str, list[dict[str, Any]]] = {d: [] for d in devices}
    for step in range(1, 9):
        for d in devices:
            queues[d].append(factory.telemetry(d, {"temperature": float(step)}, second=10 + step))
            queues[d].append(factory.connection(d, step, connected=step % 2 == 1, second=10 + step))
    total = sum(len(q) for q in queues.values())
    transport.script = [throttle(1, times=6), unavailable(503, times=6), apply_then_timeout("PATCH", times=4),
                        race([{"op": "add", "path": "/status", "value": "other"}], times=6),
                        throttle(2, method="PATCH", times=4), unavailable(502, method="GET", times=4)]
    deliveries = 0
    while any(queues.values()):
        for d in devices:
            if not queues[d]:
                continue
            deliveries += 1
            assert deliveries < 200
            batch = queues[d][:4]
            result = rig.deliver(batch)
            retry = [batch[r.index] for r in result.results if r.outcome is Outcome.RETRY]
            queues[d] = retry + queues[d][4:]  # the failed delivery comes again (Event Grid resends it)
    for d in devices:
        twin = transport.twins[d]
        assert twin["temperature"] == 8.0 and twin["connectionState"] == "Disconnected"
        assert (twin.get("status") == "other") == (d in transport.raced)  # the other writer's change kept
    assert max(rig.durations) <= INVOCATION_BUDGET
    rig.assert_no_blind_write()
    patches = transport.writes("PATCH")
    report("R4-R6 fault storm", events=total, deliveries=deliveries, faults_injected=transport.injected,
           patches=len(patches), patches_without_if_match=sum(1 for p in patches if "If-Match" not in p.headers),
           max_invocation_seconds=round(max(rig.durations), 2), lost_updates=0)
