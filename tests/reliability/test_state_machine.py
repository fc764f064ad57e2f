"""R7: a stateful model of the broker and the function (hypothesis ``RuleBasedStateMachine``).

Rules: produce new events, deliver any mix of pending and old events (duplicates, any order), crash the
instance after k twin writes or k state writes of a delivery, fail it transiently after k twin writes,
redeliver what was not acknowledged. Invariants after every step: no stored connection sequence ever decreases,
no telemetry value is written to a twin twice (each event's value is unique), and whenever nothing is pending the
twins equal the reference model. At the end everything pending is redelivered: nothing may be lost.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.state.table import TableStateStore
from shared.outcome import Outcome
from shared.ports import StateStore
from tests.reliability.figures import report
from tests.reliability.harness import (
    Change,
    Connection,
    CountingTwins,
    Crash,
    CrashingState,
    Telemetry,
    make_pipeline,
    model,
    new_graph,
    user_properties,
)
from tests.reliability.stores import RecordingState
from twinbridge.azurite import Azurite

# Each test directly and through the group commit + write pacer (tests/reliability/conftest.py).
pytestmark = pytest.mark.usefixtures("delivery")


class DeliveryMachine(RuleBasedStateMachine):
    make_store: ClassVar[Callable[[], StateStore]] = MemoryStateStore
    stats: ClassVar[dict[str, int]] = {}

    def __init__(self) -> None:
        super().__init__()
        run = uuid.uuid4().hex[:8]
        self.devices = [f"r7-{run}-a", f"r7-{run}-b"]
        self.twins = CountingTwins(new_graph())
        self.recording = RecordingState(self.make_store())
        self.state = CrashingState(self.recording)
        # One twin at a time: which twin group an injected crash hits must not depend on thread scheduling, or
        # hypothesis could not replay a failing case (R1's tests cover concurrent deliveries).
        self.pipeline = make_pipeline(self.twins, self.state, concurrency=1)
        self.produced: list[Change] = []
        self.pending: list[Change] = []  # produced, not yet acknowledged by a successful delivery
        self.numbers = 0
        self.sequences: set[int] = set()
        self._bump("machines")

    def _bump(self, name: str, amount: int = 1) -> None:
        self.stats[name] = self.stats.get(name, 0) + amount

    # ---- the world --------------------------------------------------------------------------------------
    @rule(device=st.integers(0, 1), second=st.integers(0, 5), prop=st.sampled_from(("temperature", "humidity")))
    def produce_telemetry(self, device: int, second: int, prop: str) -> None:
        self.numbers += 1
        self._produce(Telemetry(self.devices[device], self.numbers, second, prop))

    @rule(device=st.integers(0, 1), sequence=st.integers(1, 10_000), connected=st.booleans())
    def produce_connection(self, device: int, sequence: int, connected: bool) -> None:
        if sequence in self.sequences:
            return  # IoT Hub never reuses a sequence number for a device
        self.sequences.add(sequence)
        self._produce(Connection(self.devices[device], sequence, connected))

    def _produce(self, change: Change) -> None:
        self.produced.append(change)
        self.pending.append(change)
        self._bump("events")

    def _batch(self, data: st.DataObject) -> list[Change]:
        # Every draw has the same shape whatever the state (indices, then sort keys): what is pending depends on
        # the system's outcomes, and a draw shaped by it would make a failing case impossible to replay.
        picks = st.lists(st.integers(0, 2**16), max_size=6)
        fresh_picks, old_picks = data.draw(picks), data.draw(picks.map(lambda p: p[:3]))
        keys = data.draw(st.lists(st.integers(0, 2**16), min_size=9, max_size=9))
        fresh = [self.pending[i % len(self.pending)] for i in fresh_picks] if self.pending else []
        old = [self.produced[i % len(self.produced)] for i in old_picks]  # duplicates of anything
        items = fresh + old
        return [item for _, _, item in sorted(zip(keys, range(len(items)), items, strict=False))]

    def _deliver(self, batch: list[Change]) -> bool:
        """One delivery; acknowledges the batch's events unless the instance crashed or asked for a retry."""
        self._bump("deliveries")
        self._bump("event_deliveries", len(batch))
        throttles = self.twins.injected["throttles"]
        try:
            result = self.pipeline.process([c.event() for c in batch])
        except Crash:
            self._bump("crashes")
            return False
        finally:
            self.twins.crash_after = self.twins.fail_after = self.state.crash_after = None
        retry = {i for i, r in enumerate(result.results) if r.outcome is Outcome.RETRY}
        # A twin write refused as throttled must send the batch back: acknowledging it could lose that value.
        assert retry or self.twins.injected["throttles"] == throttles, "a throttled delivery was acknowledged"
        if retry:
            self._bump("transient_failures")
            return False  # the door raises: Event Grid resends the whole batch
        acked = {id(c) for c in batch}
        self.pending = [c for c in self.pending if id(c) not in acked]
        return True

    # ---- deliveries -------------------------------------------------------------------------------------
    @precondition(lambda self: self.produced)
    @rule(data=st.data())
    def deliver(self, data: st.DataObject) -> None:
        self._deliver(self._batch(data))

    @precondition(lambda self: self.produced)
    @rule(data=st.data(), k=st.integers(0, 3))
    def crash_after_k_twin_writes(self, data: st.DataObject, k: int) -> None:
        self.twins.crash_after = k
        self._deliver(self._batch(data))

    @precondition(lambda self: self.produced)
    @rule(data=st.data(), k=st.integers(0, 3))
    def crash_after_k_state_writes(self, data: st.DataObject, k: int) -> None:
        self.state.crash_after = k
        self._deliver(self._batch(data))

    @precondition(lambda self: self.produced)
    @rule(data=st.data(), k=st.integers(0, 2))
    def throttled_after_k_twin_writes(self, data: st.DataObject, k: int) -> None:
        self.twins.fail_after = k
        self._deliver(self._batch(data))

    @precondition(lambda self: self.pending)
    @rule()
    def redeliver_everything_pending(self) -> None:
        self._deliver(list(self.pending))

    @precondition(lambda self: self.produced and not self.pending)
    @rule(data=st.data())
    def duplicate_of_acknowledged_events_writes_nothing(self, data: st.DataObject) -> None:
        before = self.twins.total()
        assert self._deliver(self._batch(data))
        assert self.twins.total() == before

    # ---- invariants -------------------------------------------------------------------------------------
    @invariant()
    def sequence_never_decreases(self) -> None:
        assert self.recording.sequence_regressions() == 0

    @invariant()
    def no_value_written_twice(self) -> None:
        telemetry = [(t, p, v) for t, p, v in self.twins.written_values if p != "connectionState"]
        assert len(telemetry) == len(set(telemetry)), "a telemetry value was applied twice"

    @invariant()
    def twins_equal_the_model_when_nothing_is_pending(self) -> None:
        if not self.pending:
            self._check_model()

    def _check_model(self) -> None:
        expected = model(self.produced)
        for device in self.devices:
            assert user_properties(self.twins.get_twin(device)) == expected.get(device)

    def teardown(self) -> None:
        attempts = 0
        while self.pending:  # Event Grid keeps redelivering; no faults now
            attempts += 1
            assert attempts < 5, "events still pending after redelivery without faults"
            self._deliver(list(self.pending))
        self._check_model()  # none lost
        self._bump("lost_events", 0)
        self._bump("twin_writes", self.twins.total())
        self._bump("throttles_injected", self.twins.injected["throttles"])


@pytest.fixture(params=["memory", "table"])
def machine(request: pytest.FixtureRequest) -> tuple[str, type[DeliveryMachine], int]:
    if request.param == "memory":
        return "memory", type("MemoryMachine", (DeliveryMachine,), {"stats": {}}), 150
    request.applymarker(pytest.mark.integration)
    azurite: Azurite = request.getfixturevalue("azurite")
    shared = TableStateStore.from_connection_string(azurite.connection_string, request.getfixturevalue("table_name"))
    attrs: dict[str, Any] = {"stats": {}, "make_store": staticmethod(lambda: shared)}
    return "table", type("TableMachine", (DeliveryMachine,), attrs), 40


def test_r7_crash_duplicate_reorder_redeliver(machine: tuple[str, type[DeliveryMachine], int]) -> None:
    name, cls, examples = machine
    run_state_machine_as_test(cls, settings=settings(max_examples=examples, stateful_step_count=25, deadline=None,
                                                     suppress_health_check=[HealthCheck.too_slow]))
    stats = cls.stats
    assert stats["machines"] >= examples
    if name == "memory":  # enough runs that every fault kind must have struck (else the test proves little)
        assert stats.get("crashes", 0) > 0 and stats.get("throttles_injected", 0) > 0
        assert stats.get("transient_failures", 0) > 0  # each delivery a throttle struck reports RETRY (_deliver)
    report(f"R7 stateful ({name})", examples=stats["machines"], events=stats.get("events", 0),
           deliveries=stats.get("deliveries", 0), event_deliveries=stats.get("event_deliveries", 0),
           crashes=stats.get("crashes", 0), transient_failures=stats.get("transient_failures", 0),
           throttles_injected=stats.get("throttles_injected", 0),
           twin_writes=stats.get("twin_writes", 0), values_written_twice=0, sequence_regressions=0,
           lost_events=0)
