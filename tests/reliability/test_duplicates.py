"""R1 duplicates: an event delivered up to 10 times (sequentially, from concurrent threads, from two processes
sharing Azurite) makes exactly one effective twin write, and the twin is the same as after one delivery."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from collections.abc import Callable
from multiprocessing.managers import BaseManager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.state.table import TableStateStore
from shared.ports import StateStore
from tests.reliability import harness
from tests.reliability.figures import report
from tests.reliability.harness import (
    Connection,
    CountingTwins,
    Telemetry,
    make_pipeline,
    model,
    new_graph,
    user_properties,
)
from tests.reliability.stores import RecordingState, SlowState
from tests.support import event_factory as factory
from twinbridge.azurite import Azurite

# Each test directly and through the group commit + write pacer (tests/reliability/conftest.py).
pytestmark = pytest.mark.usefixtures("delivery")

THREADS = 8


def _changes(device: str) -> list[tuple[str, dict[str, Any]]]:
    """One event per kind of logical change, in an order where each one changes the twin."""
    return [("DeviceCreated", factory.lifecycle(device, second=1)),
            ("DeviceConnected", Connection(device, 10, True).event()),
            ("DeviceTelemetry", Telemetry(device, 1, 3, "temperature").event()),
            ("DeviceDisconnected", Connection(device, 11, False).event()),
            ("DeviceTelemetry(2 fields)", factory.telemetry(device, {"humidity": 41.0, "co2": 400.0}, second=20,
                                                            event_id=f"tel2-{device}")),
            ("DeviceDeleted", factory.lifecycle(device, created=False, second=30, version=2))]


StoreFactory = Callable[[], StateStore]


@pytest.fixture(params=["memory", "table"])
def store_factory(request: pytest.FixtureRequest) -> tuple[str, StoreFactory]:
    """A factory of state store *instances* that share one backing store, as function instances do."""
    if request.param == "memory":
        shared = MemoryStateStore()
        return "memory", lambda: SlowState(shared)
    request.applymarker(pytest.mark.integration)
    azurite: Azurite = request.getfixturevalue("azurite")
    table = request.getfixturevalue("table_name")
    return "table", lambda: TableStateStore.from_connection_string(azurite.connection_string, table)


def _check_sequential(repeats: list[int], store: StateStore, counters: dict[str, int]) -> None:
    device = f"seq-{uuid.uuid4().hex[:10]}"
    twins = CountingTwins(new_graph())
    pipeline = make_pipeline(twins, RecordingState(store))
    single = CountingTwins(new_graph())
    reference = make_pipeline(single, MemoryStateStore())
    for (kind, event), times in zip(_changes(device), repeats, strict=True):
        before = twins.total()
        for _ in range(times):
            pipeline.process([event])
        reference.process([event])
        assert twins.total() - before == 1, f"{kind} delivered {times}x made {twins.total() - before} writes"
        assert user_properties(twins.inner.get_twin(device)) == user_properties(single.inner.get_twin(device))
        counters["deliveries"] += times
        counters["changes"] += 1
    counters["examples"] += 1


def test_r1_sequential_duplicates(store_factory: tuple[str, StoreFactory]) -> None:
    """Each of six kinds of change delivered N∈[1,10] times in a row (N drawn per change by hypothesis)."""
    name, make = store_factory
    counters = {"examples": 0, "deliveries": 0, "changes": 0}
    store = make()

    @settings(max_examples=60 if name == "memory" else 8, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(repeats=st.lists(st.integers(1, 10), min_size=6, max_size=6))
    def check(repeats: list[int]) -> None:
        _check_sequential(repeats, store, counters)

    check()
    report(f"R1 sequential duplicates ({name})", examples=counters["examples"], logical_changes=counters["changes"],
           deliveries=counters["deliveries"], writes_per_logical_change=1)


def _deliver_together(pipelines: list[Any], event: dict[str, Any]) -> list[BaseException]:
    """Every pipeline gets ``event`` at the same moment (a barrier), each on its own thread."""
    barrier = threading.Barrier(len(pipelines))
    errors: list[BaseException] = []

    def deliver(pipeline: Any) -> None:
        try:
            barrier.wait()
            pipeline.process([event]).raise_if_transient()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=(p,)) for p in pipelines]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_r1_concurrent_duplicates_from_threads(store_factory: tuple[str, StoreFactory]) -> None:
    """8 instances (own pipeline, own state client) get the same event at the same moment, for every change."""
    name, make = store_factory
    graph = new_graph()
    twins = CountingTwins(graph)
    rounds = 0
    tried = 0
    for round_no in range(3 if name == "table" else 12):
        device = f"thr-{round_no}-{uuid.uuid4().hex[:6]}"
        pipelines = [make_pipeline(twins, make(), concurrency=4) for _ in range(THREADS)]
        for kind, event in _changes(device):
            before = twins.total()
            errors = _deliver_together(pipelines, event)
            assert not errors, errors
            assert twins.total() - before == 1, f"{kind}: {twins.total() - before} writes from {THREADS} duplicates"
            tried += THREADS
        rounds += 1
    report(f"R1 concurrent duplicates, threads ({name})", rounds=rounds, threads=THREADS,
           concurrent_deliveries=tried, logical_changes=rounds * len(_changes("x")), writes_per_logical_change=1)


# ---- two processes against Azurite ---------------------------------------------------------------------------
class TwinManager(BaseManager):
    """Serves one counting twin graph to several processes (each call runs in the manager process)."""


def _serve_twins() -> tuple[TwinManager, Any]:
    manager = TwinManager(ctx=multiprocessing.get_context("spawn"))
    manager.start()
    return manager, manager.Twins()  # type: ignore[attr-defined]


def _make_counting_twins() -> CountingTwins:
    return CountingTwins(new_graph())


TwinManager.register("Twins", callable=_make_counting_twins,
                     exposed=["get_twin", "create_twin", "patch_twin", "delete_twin", "list_twins",
                              "list_relationships", "list_incoming_relationships", "total"])


def _worker(connection: str, table: str, twins: Any, events: list[dict[str, Any]], times: int, start: Any,
            results: Any, paced: bool) -> None:
    harness.PACED = paced  # a spawned process imports the harness afresh: the delivery fixture's setting is not here
    store = TableStateStore.from_connection_string(connection, table)
    pipeline = make_pipeline(twins, store, concurrency=1)
    start.wait()
    outcomes: dict[str, int] = {}
    for event in events:
        for _ in range(times):
            for result in pipeline.process([event]).results:
                outcomes[result.outcome.value] = outcomes.get(result.outcome.value, 0) + 1
    for built in harness.BUILT:
        built.commit.close()
    runs = [(b.commit.batches, b.paced.stats.sent, b.paced.stats.waited_seconds) for b in harness.BUILT]
    results.put((outcomes, runs))


@pytest.mark.integration
def test_r1_duplicates_from_two_processes(azurite: Azurite, table_name: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    manager, twins = _serve_twins()
    try:
        devices = [f"proc-{i}-{uuid.uuid4().hex[:6]}" for i in range(3)]
        events = [event for d in devices for _, event in _changes(d)]
        times = 3
        start = ctx.Barrier(2)
        results = ctx.Queue()
        workers = [ctx.Process(target=_worker, args=(azurite.connection_string, table_name, twins, events, times,
                                                     start, results, harness.PACED)) for _ in range(2)]
        for w in workers:
            w.start()
        answers = [results.get(timeout=120) for _ in workers]
        outcomes = [o for o, _ in answers]
        harness.REMOTE_PACED.extend(run for _, runs in answers for run in runs)
        for w in workers:
            w.join(timeout=60)
            assert w.exitcode == 0
        writes = twins.total()
        assert writes == len(events), f"{writes} effective writes for {len(events)} logical changes"
        merged: dict[str, int] = {}
        for o in outcomes:
            for k, v in o.items():
                merged[k] = merged.get(k, 0) + v
        assert merged.get("retry", 0) == 0
        assert merged.get("applied", 0) == len(events)  # each change applied by exactly one of the processes
        report("R1 duplicates from two processes (Azurite table)", processes=2, logical_changes=len(events),
               deliveries=2 * times * len(events), effective_writes=writes, outcomes=merged)
    finally:
        manager.shutdown()


def test_concurrent_distinct_events_for_one_twin_lose_nothing(store_factory: tuple[str, StoreFactory]) -> None:
    """The other half of concurrency: 8 instances deliver *different* events for the same twin at once. The
    conditional state write (insert / replace-if-etag) must not let one instance's shadow overwrite another's."""
    name, make = store_factory
    twins = CountingTwins(new_graph())
    rounds = 3 if name == "table" else 15
    redeliveries: list[int] = []
    for round_no in range(rounds):
        device = f"mix-{round_no}-{uuid.uuid4().hex[:6]}"
        pipelines = [make_pipeline(twins, make(), concurrency=1) for _ in range(THREADS)]
        changes: list[Connection | Telemetry] = []
        for step in range(3):
            batch = [Telemetry(device, step * THREADS + i, step * THREADS + i, ("temperature", "humidity")[i % 2])
                     if i % 3 else Connection(device, step * THREADS + i + 1, bool(i % 2)) for i in range(THREADS)]
            changes += batch
            errors = _deliver_together_each(pipelines, [c.event() for c in batch], redeliveries)
            assert not errors, errors
        assert user_properties(twins.inner.get_twin(device)) == model(changes)[device]
    report(f"R1/R5 concurrent distinct events, one twin ({name})", rounds=rounds, threads=THREADS,
           events=rounds * 3 * THREADS, redeliveries_after_conflict_exhaustion=len(redeliveries), lost_updates=0)


def _deliver_together_each(pipelines: list[Any], events: list[dict[str, Any]],
                           redeliveries: list[int]) -> list[BaseException]:
    """Each pipeline gets its own event at the same moment; a transient outcome is redelivered, as Event Grid does
    (under 8-way contention on one twin an instance can lose every one of its conflict attempts)."""
    barrier = threading.Barrier(len(pipelines))
    errors: list[BaseException] = []

    def deliver(pipeline: Any, event: dict[str, Any]) -> None:
        try:
            barrier.wait()
            for _ in range(10):
                if not pipeline.process([event]).transient:
                    return
                redeliveries.append(1)
            raise AssertionError("still transient after 10 deliveries")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=deliver, args=pe) for pe in zip(pipelines, events, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors
