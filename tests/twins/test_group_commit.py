"""Group commit (shared/twins/group_commit.py): concurrent invocations share one pipeline batch, each learns its
own outcome, a lone event waits no longer than the window, and the door raises only for its own transient failure —
after which the host's 500 makes Event Grid resend the whole array, which is harmless (idempotent)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from shared.errors import Code, TransientError
from shared.outcome import Outcome
from shared.twins import deadline
from shared.twins.group_commit import GroupCommit
from shared.twins.pipeline import BatchReport, EventResult
from shared.wiring import embedded_twin_store
from tests.support import event_factory as factory
from tests.support.rig import CATALOG, rig


class Recorder:
    """A pipeline stand-in: records each batch and answers one APPLIED result per event."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[Any]] = []
        self.delay = delay
        self.threads: set[str] = set()
        self.budgets: list[float | None] = []

    def __call__(self, events: list[Any], sizes: list[int | None] | None = None) -> BatchReport:
        self.batches.append(list(events))
        self.threads.add(threading.current_thread().name)
        self.budgets.append(deadline.remaining())
        time.sleep(self.delay)
        return BatchReport([EventResult(i, str(e), None, Outcome.APPLIED) for i, e in enumerate(events)])


async def _submit_all(commit: GroupCommit, events: list[Any]) -> list[Any]:
    return await asyncio.gather(*(commit.submit(e) for e in events), return_exceptions=True)


def test_concurrent_submits_share_one_batch_and_each_gets_its_own_result() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder, window=0.02, max_wait=1.0)
    results = asyncio.run(_submit_all(commit, [f"e{i}" for i in range(50)]))
    assert len(recorder.batches) == 1 and recorder.batches[0] == [f"e{i}" for i in range(50)]
    assert [r.event_id for r in results] == [f"e{i}" for i in range(50)]  # each its own, in order
    assert recorder.threads == {"group-commit"}  # the pipeline ran off the event loop's thread
    commit.close()


def test_a_lone_event_waits_the_window_and_no_longer() -> None:
    commit = GroupCommit(Recorder(), window=0.05, max_wait=1.0)

    async def one() -> float:
        started = time.perf_counter()
        await commit.submit("alone")
        return time.perf_counter() - started

    waited = asyncio.run(one())
    assert 0.05 <= waited < 0.05 + 0.04  # the window, plus scheduling
    commit.close()


def test_a_pause_in_the_middle_of_a_dispatched_array_does_not_split_it() -> None:
    """The host starts an array's invocations at once: their first steps run in one pass of the loop. A pause in
    that pass longer than the window (a collection, the OS running something else) must not close the window."""
    recorder = Recorder()
    commit = GroupCommit(recorder, window=0.005, max_wait=1.0)

    async def invocation(i: int) -> Any:
        if i == 10:
            time.sleep(0.05)  # blocks the loop mid-pass, 10× the window
        return await commit.submit(i)

    async def array() -> list[Any]:
        return await asyncio.gather(*(invocation(i) for i in range(20)))

    asyncio.run(array())
    assert recorder.batches == [list(range(20))]
    commit.close()


def test_a_steady_stream_cannot_hold_a_batch_open_past_max_wait() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder, window=0.02, max_wait=0.05)

    async def stream() -> None:
        tasks = []
        for i in range(30):  # one every 10 ms: never a 20 ms quiet gap
            tasks.append(asyncio.ensure_future(commit.submit(i)))
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)

    asyncio.run(stream())
    assert len(recorder.batches) >= 4  # ~300 ms of stream, batches capped at ~50 ms
    assert sorted(e for b in recorder.batches for e in b) == list(range(30))
    assert [e for b in recorder.batches for e in b] == list(range(30))  # arrival order kept across batches
    commit.close()


def test_max_events_flushes_at_once() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder, window=1.0, max_wait=1.0, max_events=10)
    started = time.perf_counter()
    asyncio.run(_submit_all(commit, list(range(25))))
    assert [len(b) for b in recorder.batches] == [10, 10, 5]  # two full batches at once, the rest at the window
    assert time.perf_counter() - started >= 1.0 - 0.05
    commit.close()


def test_waiters_from_several_event_loops_share_a_batch() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder, window=0.1, max_wait=1.0)
    results: dict[int, Any] = {}

    def invocation(i: int) -> None:
        results[i] = asyncio.run(commit.submit(i))

    threads = [threading.Thread(target=invocation, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(recorder.batches) == 1 and sorted(recorder.batches[0]) == [0, 1, 2, 3]
    assert {i: r.event_id for i, r in results.items()} == {i: str(i) for i in range(4)}
    commit.close()


def test_a_batch_that_raises_fails_every_waiter_of_that_batch_only() -> None:
    calls = []

    def process(events: list[Any], sizes: list[int | None]) -> BatchReport:
        calls.append(events)
        if len(calls) == 1:
            raise TransientError(Code.ADT_UNAVAILABLE, "quarantine store down")
        return BatchReport([EventResult(i, str(e), None, Outcome.APPLIED) for i, e in enumerate(events)])

    commit = GroupCommit(process, window=0.01, max_wait=0.5)
    first = asyncio.run(_submit_all(commit, ["a", "b"]))
    second = asyncio.run(_submit_all(commit, ["c"]))
    assert all(isinstance(r, TransientError) for r in first)
    assert second[0].outcome is Outcome.APPLIED
    commit.close()


def test_the_batch_runs_within_the_oldest_invocations_budget() -> None:
    recorder = Recorder()
    commit = GroupCommit(recorder, window=0.2, max_wait=1.0, budget_seconds=5.0)
    asyncio.run(_submit_all(commit, ["x"]))
    (left,) = recorder.budgets
    assert left is not None and 4.5 < left <= 5.0 - 0.2  # the 0.2 s spent in the window came off the budget
    commit.close()


def test_invalid_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        GroupCommit(Recorder(), window=0.2, max_wait=0.1)
    with pytest.raises(ValueError):
        GroupCommit(Recorder(), max_events=0)


# --- with the real pipeline -----------------------------------------------------------------------------------

class FlakyTwin:
    """The embedded graph, except that writes to ``twin_id`` fail transiently ``times`` times."""

    def __init__(self, graph: Any, twin_id: str, times: int = 1) -> None:
        self.graph, self.twin_id, self.left = graph, twin_id, times
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.graph, name)

    def _maybe_fail(self, twin_id: str) -> None:
        if twin_id == self.twin_id and self.left > 0:
            self.left -= 1
            raise TransientError(Code.ADT_UNAVAILABLE, "injected outage")

    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str:
        self._maybe_fail(twin_id)
        self.writes += 1
        return str(self.graph.create_twin(twin_id, document))

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        self._maybe_fail(twin_id)
        self.writes += 1
        return str(self.graph.patch_twin(twin_id, patch, etag))


def _delivery() -> list[dict[str, Any]]:
    events = [factory.lifecycle(f"d{i}", second=1) for i in range(5)]
    events += [factory.telemetry(f"d{i}", {"temperature": 20 + i}, second=2) for i in range(5)]
    bad = factory.connection("d9", 1)
    bad["topic"] = bad["topic"].replace("FACTORY-HUB", "SOMEONE-ELSES-HUB")  # permanent: quarantined
    return [*events, bad]


async def _as_the_host_does(commit: GroupCommit, events: list[dict[str, Any]]) -> int:
    """The host's Event Grid dispatch: every event's invocation at once; 500 if any failed, else 202."""
    async def invocation(event: dict[str, Any]) -> None:
        result = await commit.submit(event)
        BatchReport([result]).raise_if_transient()  # what functions/ingest_iothub_events.py does

    outcomes = await asyncio.gather(*(invocation(e) for e in events), return_exceptions=True)
    return 500 if any(isinstance(o, BaseException) for o in outcomes) else 202


def test_only_the_failed_events_invocation_raises_and_the_resent_array_is_harmless() -> None:
    clean = rig()
    clean.pipeline.process(_delivery())

    flaky_store = FlakyTwin(embedded_twin_store(CATALOG), "d3")
    r = rig(twins=flaky_store)
    commit = GroupCommit(r.pipeline.process, window=0.02, max_wait=1.0)

    async def one_delivery() -> list[Any]:
        invocations = [commit.submit(e) for e in _delivery()]
        return await asyncio.gather(*invocations)

    results = asyncio.run(one_delivery())
    assert commit.batches == 1  # one pipeline batch for the whole delivery
    retry = {r.event_id for r in results if r.outcome is Outcome.RETRY}
    assert retry == {e["id"] for e in _delivery() if e["subject"] == "devices/d3"}  # only d3's events
    assert [r.outcome for r in results][-1] is Outcome.QUARANTINED  # the bad one: quarantined, no raise

    # The host answers 500 for the array; Event Grid resends all of it. Replaying it changes nothing but d3.
    before = r.user_twins()
    writes_before = flaky_store.writes
    status = asyncio.run(_as_the_host_does(commit, _delivery()))
    assert status == 202
    after = r.user_twins()
    assert {k: v for k, v in after.items() if k != "d3"} == {k: v for k, v in before.items() if k != "d3"}
    assert after == clean.user_twins()  # exactly the effect of one clean delivery
    assert flaky_store.writes - writes_before == 1  # only d3 was written on the resend (the others: no-ops)
    assert len(r.quarantine) == 1 and len(clean.quarantine) == 1  # the bad event's record, once
    commit.close()
