"""In the real execution runtime (azure-functions-runtime), concurrent invocations of the ``async def`` Event Grid
trigger door overlap: they run together on the runtime's event loop, so the group commit
(shared/twins/group_commit.py) gathers them into one pipeline batch — and one event's transient failure fails only
its own invocation. Written for the real-runtime tier (tests/runtime, `make runtime-test`, Python 3.13), driving the
runtime through twinbridge/localhost/real_runtime.py as the host's proxy worker does; elsewhere it skips.

How overlap is shown: the door's group commit has a long window here (300 ms). Invocations that ran one after the
other would each wait out their own window and make one batch each (N batches, at least N × 300 ms); overlapping
ones make one batch of N in about one window.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

real_runtime = pytest.importorskip("twinbridge.localhost.real_runtime")

_missing = real_runtime.available()
if _missing:
    if os.environ.get("TWINBRIDGE_REQUIRE_REAL_RUNTIME") == "1":
        raise RuntimeError(f"the real-runtime tier must run here but cannot: {_missing}")
    pytest.skip(f"real-runtime tier: {_missing} (make runtime-test runs it in .venv313)", allow_module_level=True)

from functions.runtime import use_app  # noqa: E402  (after the skip: only where the runtime exists)
from shared.errors import Code, TransientError  # noqa: E402
from shared.settings.environment import Settings  # noqa: E402
from shared.settings.throughput import ThroughputSettings  # noqa: E402
from tests.support import event_factory as factory  # noqa: E402
from tests.support.rig import make_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WINDOW_MS = 300.0
INVOCATIONS = 8


@pytest.fixture(scope="module")
def rt() -> Iterator[Any]:
    runtime = real_runtime.RealRuntime(ROOT)
    runtime.start()
    yield runtime
    runtime.close()


@pytest.fixture
def app() -> Iterator[Any]:
    settings = Settings(throughput=ThroughputSettings(group_commit_window_ms=WINDOW_MS,
                                                      group_commit_max_wait_ms=10 * WINDOW_MS * INVOCATIONS))
    application = make_app(settings=settings)
    use_app(application)
    yield application
    application.ingest_commit.close()
    use_app(None)


def _invoke_all_at_once(rt: Any, events: list[dict[str, Any]]) -> tuple[list[Any], float]:
    """The host's dispatch of a delivered array: every invocation sent at once (the proxy worker hands each to the
    runtime as it arrives; ``rt.invoke`` waits for its answer, hence one thread per invocation)."""
    results: list[Any] = [None] * len(events)
    barrier = threading.Barrier(len(events))

    def call(index: int) -> None:
        barrier.wait()
        results[index] = rt.invoke("ingest_iothub_events", {"event": rt.json(events[index])})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(events))]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, time.perf_counter() - started


def test_concurrent_async_invocations_overlap_and_share_one_pipeline_batch(rt: Any, app: Any) -> None:
    events = [factory.lifecycle(f"dev-overlap-{i}", second=1) for i in range(INVOCATIONS)]
    results, wall = _invoke_all_at_once(rt, events)
    assert all(r is not None and r.ok for r in results), [r.error for r in results if r is not None and not r.ok]
    assert app.ingest_commit.batches == 1 and app.ingest_commit.flushed_events == INVOCATIONS
    assert wall < INVOCATIONS * WINDOW_MS / 1000 / 2  # one after the other would take ≥ 8 × 300 ms
    twins = {t["$dtId"] for t in app.twins.list_twins()}
    assert {f"dev-overlap-{i}" for i in range(INVOCATIONS)} <= twins


def test_only_the_invocation_whose_event_failed_transiently_fails(rt: Any, app: Any,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    create = app.twins.create_twin

    def flaky(twin_id: str, document: dict[str, Any]) -> str:
        if twin_id == "dev-flaky-3":
            raise TransientError(Code.ADT_UNAVAILABLE, "injected outage")
        return str(create(twin_id, document))

    monkeypatch.setattr(app.twins, "create_twin", flaky)
    events = [factory.lifecycle(f"dev-flaky-{i}", second=1) for i in range(INVOCATIONS)]
    results, _ = _invoke_all_at_once(rt, events)
    failed = [i for i, r in enumerate(results) if not r.ok]
    assert failed == [3]  # the host then answers 500 and Event Grid resends the array: the others are no-ops
    assert app.ingest_commit.batches == 1
