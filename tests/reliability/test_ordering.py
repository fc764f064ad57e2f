"""R2 ordering: any permutation, with repeats, of a device's connection and telemetry events, cut into batches
of any size, gives the same twin as in-order delivery; no saved shadow ever lowers the stored sequence number."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.state.table import TableStateStore
from shared.ports import StateStore
from tests.reliability.figures import report
from tests.reliability.harness import Change, Connection, CountingTwins, Telemetry, make_pipeline, model, new_graph
from tests.reliability.harness import user_properties as props
from tests.reliability.stores import RecordingState
from twinbridge.azurite import Azurite

# Each test directly and through the group commit + write pacer (tests/reliability/conftest.py).
pytestmark = pytest.mark.usefixtures("delivery")


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, list[Change], list[list[Change]]]:
    """A device's events, then the broker's view of them: each 1–3 times, in any order, in batches of 1–5."""
    device = f"ord-{uuid.uuid4().hex[:10]}"
    sequences = draw(st.lists(st.integers(1, 2**40), min_size=1, max_size=6, unique=True))
    changes: list[Change] = [Connection(device, s, draw(st.booleans())) for s in sequences]
    seconds = draw(st.lists(st.integers(0, 4), max_size=6))  # few distinct times: ties on enqueued time happen
    changes += [Telemetry(device, i, sec, draw(st.sampled_from(("temperature", "humidity"))))
                for i, sec in enumerate(seconds)]
    repeats = draw(st.lists(st.integers(1, 3), min_size=len(changes), max_size=len(changes)))
    stream = draw(st.permutations([c for c, n in zip(changes, repeats, strict=True) for _ in range(n)]))
    batches: list[list[Change]] = []
    while stream:
        size = draw(st.integers(1, 5))
        batches.append(list(stream[:size]))
        stream = stream[size:]
    return device, changes, batches


def in_order(changes: list[Change]) -> list[Change]:
    def key(c: Change) -> tuple[Any, ...]:
        return (0, c.sequence) if isinstance(c, Connection) else (1, c.second, c.event_id)
    return sorted(changes, key=key)


def check(case: tuple[str, list[Change], list[list[Change]]], store: StateStore, counters: dict[str, int]) -> None:
    device, changes, batches = case
    recording = RecordingState(store)
    twins = CountingTwins(new_graph())
    pipeline = make_pipeline(twins, recording)
    for batch in batches:
        pipeline.process([c.event() for c in batch]).raise_if_transient()
    reference = CountingTwins(new_graph())
    ordered = make_pipeline(reference, MemoryStateStore())
    for change in in_order(changes):
        ordered.process([change.event()])
    got = props(twins.get_twin(device))
    assert got == props(reference.get_twin(device))  # the same as in-order delivery
    assert got == model(changes)[device]  # and as the independent reference model
    assert recording.sequence_regressions() == 0
    assert twins.total() <= reference.total()  # shuffling never costs more writes than in-order delivery
    counters["examples"] += 1
    counters["events"] += len(changes)
    counters["deliveries"] += sum(len(b) for b in batches)
    counters["saves_checked"] += len(recording.saved)


@pytest.fixture(params=["memory", "table"])
def store(request: pytest.FixtureRequest) -> tuple[str, Callable[[], StateStore], int]:
    if request.param == "memory":
        return "memory", MemoryStateStore, 300
    request.applymarker(pytest.mark.integration)
    azurite: Azurite = request.getfixturevalue("azurite")
    shared = TableStateStore.from_connection_string(azurite.connection_string, request.getfixturevalue("table_name"))
    return "table", lambda: shared, 25  # one table; every example uses its own device


def test_r2_any_order_any_repeats_gives_the_in_order_twin(store: tuple[str, Callable[[], StateStore], int]) -> None:
    name, make, examples = store
    counters = {"examples": 0, "events": 0, "deliveries": 0, "saves_checked": 0}

    @settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(deliveries())
    def run(case: tuple[str, list[Change], list[list[Change]]]) -> None:
        check(case, make(), counters)

    run()
    report(f"R2 ordering ({name})", examples=counters["examples"], events=counters["events"],
           deliveries=counters["deliveries"], shadow_saves_checked=counters["saves_checked"],
           sequence_regressions=0, final_twin_mismatches=0)
