"""Group commit: events handed over one per invocation go through the pipeline in batches.

Why: the Python Event Grid trigger gets one event per invocation, and the host starts one invocation per event of a
delivered array, all at once (docs/doors.md, "How the host dispatches a delivered array"). One pipeline call per
event means one twin write per event, where the webhook door writes each twin once per delivery. With an
``async def`` door the worker runs those invocations concurrently on its event loop; each one hands its event to
the process's ``GroupCommit`` and awaits its own outcome, and one pipeline batch serves them all.

When a batch is flushed: the window (``window`` seconds) closes when no further event has arrived for that long —
a lone event at low traffic waits exactly the window, never more — or ``max_wait`` after the first waiting event
(a steady stream cannot hold a batch open), or at once when ``max_events`` wait. Invocations an event loop starts in
one pass (a delivered array dispatched at once) keep the window open until that pass ends, so a pause in the middle
(a collection, the OS scheduling another process) does not split the array. One batch runs at a time, on the
flusher thread (never on an event loop): while it runs the next one fills, so batches grow with the load and with
the twin store's latency (classic group commit), and arrival order is kept from batch to batch.

Deadline: a batch runs inside the time budget of its *oldest* event's invocation (shared/twins/deadline.py), so
time spent waiting for the batch comes off it and one invocation stays under Event Grid's 30 s.

Outcomes: each waiter gets its own ``EventResult``; the door raises only when that one is ``RETRY``. If the whole
batch fails (``process`` raised, e.g. the quarantine store is down), every waiter of that batch gets the exception.

Pure asyncio and one thread: no Azure import. Callers may come from any number of event loops (each outcome is set
on its caller's loop with ``call_soon_threadsafe``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shared.settings.throughput import GROUP_COMMIT_MAX_EVENTS, GROUP_COMMIT_MAX_WAIT_MS, GROUP_COMMIT_WINDOW_MS
from shared.twins.deadline import INVOCATION_BUDGET_SECONDS, invocation_budget

log = logging.getLogger("twinbridge.group_commit")

DEFAULT_WINDOW_SECONDS = GROUP_COMMIT_WINDOW_MS / 1000
DEFAULT_MAX_WAIT_SECONDS = GROUP_COMMIT_MAX_WAIT_MS / 1000
DEFAULT_MAX_EVENTS = GROUP_COMMIT_MAX_EVENTS


class _Report(Protocol):
    @property
    def results(self) -> Sequence[Any]: ...


@dataclass(slots=True)
class _Waiter:
    event: Any
    size: int | None  # the event's size on the wire when the door knows it (the pipeline's size guard)
    arrived: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class GroupCommit:
    """``await submit(event)`` → that event's result from one shared pipeline batch (module docstring)."""

    def __init__(self, process: Callable[[list[Any], list[int | None]], _Report], *,
                 window: float = DEFAULT_WINDOW_SECONDS, max_wait: float = DEFAULT_MAX_WAIT_SECONDS,
                 max_events: int = DEFAULT_MAX_EVENTS,
                 budget_seconds: float = INVOCATION_BUDGET_SECONDS,
                 clock: Callable[[], float] = time.monotonic, name: str = "group-commit") -> None:
        if window < 0 or max_wait < window or max_events < 1:
            raise ValueError("need 0 <= window <= max_wait and max_events >= 1")
        self._process = process
        self.window = window
        self.max_wait = max_wait
        self.max_events = max_events
        self.budget_seconds = budget_seconds
        self._clock = clock
        self._name = name
        self._waiting: list[_Waiter] = []
        self._last_arrival = 0.0
        self._bursting: set[asyncio.AbstractEventLoop] = set()  # loops in the middle of a pass that submitted
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches = 0  # flushed so far (tests, the bench)
        self.flushed_events = 0

    async def submit(self, event: Any, size: int | None = None) -> Any:
        """Hand ``event`` (``size``: its bytes on the wire, when known) over and wait for its own result (an
        ``EventResult``), or the batch's exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the group commit is closed")
            now = self._clock()
            self._waiting.append(_Waiter(event, size, now, loop, future))
            self._last_arrival = now
            if loop not in self._bursting:
                # Invocations started together (a delivered array) run their first steps in one pass of the loop;
                # the window stays open until that pass is over, however long a pause (GC, the OS) interrupts it.
                self._bursting.add(loop)
                loop.call_soon(self._burst_over, loop)
            self._ensure_thread()
            # Wake the flusher only when it must decide something new: the first waiter opens a window (the
            # flusher re-reads the last arrival when its wait ends), a full batch goes at once. Waking it for every
            # event would hand the GIL back and forth once per invocation.
            if len(self._waiting) == 1 or len(self._waiting) == self.max_events:
                self._cond.notify()
        return await future

    def _burst_over(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._cond:
            self._bursting.discard(loop)
            self._last_arrival = self._clock()  # the quiet gap counts from the end of the burst

    def close(self) -> None:
        """Flush what waits, then stop the flusher thread (tests, the local host's stop)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=30)

    # ---- the flusher thread -------------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _due_in(self) -> float:
        """Seconds until the waiting batch must be flushed (<= 0: now). Called with the lock held."""
        if len(self._waiting) >= self.max_events or self._closed:
            return 0.0
        now = self._clock()
        quiet = self._last_arrival + self.window - now
        if self._bursting:  # a loop is still starting invocations: look again a window from now
            quiet = max(self.window, 0.001)
        capped = self._waiting[0].arrived + self.max_wait - now
        return min(quiet, capped)

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    if not self._waiting:
                        if self._closed:
                            return
                        self._cond.wait()
                        continue
                    due = self._due_in()
                    if due <= 0:
                        break
                    self._cond.wait(due)
                batch = self._waiting[:self.max_events]
                del self._waiting[:self.max_events]
            self._flush(batch)

    def _flush(self, batch: list[_Waiter]) -> None:
        events = [w.event for w in batch]
        sizes = [w.size for w in batch]
        # The oldest waiter's invocation started when it arrived: the batch gets what is left of its budget.
        left = self.budget_seconds - (self._clock() - batch[0].arrived)
        try:
            with invocation_budget(max(0.0, left)):
                report = self._process(events, sizes)
            results = list(report.results)
            if len(results) != len(batch):
                raise RuntimeError(f"{len(results)} result(s) for a batch of {len(batch)}")  # a bug, never input
        except BaseException as exc:  # every waiter of the batch learns it (the door raises: redelivery)
            if not isinstance(exc, Exception):
                log.error("group commit batch of %d interrupted: %r", len(batch), exc)
            _settle(batch, None, exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        finally:
            self.batches += 1
            self.flushed_events += len(batch)
        _settle(batch, results, None)


def _settle(batch: list[_Waiter], results: list[Any] | None, error: Exception | None) -> None:
    """Each waiter's outcome set on its own loop: one hand-over per loop (not per waiter: each wakes the loop)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
    for index, waiter in enumerate(batch):
        by_loop.setdefault(waiter.loop, []).append((waiter.future, results[index] if results is not None else None))

    def deliver(outcomes: list[tuple[asyncio.Future[Any], Any]]) -> None:
        for future, result in outcomes:
            if future.done():  # the invocation was cancelled meanwhile: its event was still processed
                continue
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

    for loop, outcomes in by_loop.items():
        try:
            loop.call_soon_threadsafe(deliver, outcomes)
        except RuntimeError:  # that loop is closed: nobody waits for these outcomes any more
            log.debug("group commit: a waiter's event loop is closed")
