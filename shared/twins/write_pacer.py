"""The write pacer: a TwinStore in front of the real one that keeps this process within Azure Digital Twins' rate
limits, whatever the input rate and whichever door the events came through.

Limits (docs/configuration.md; defaults from Learn, https://learn.microsoft.com/azure/digital-twins/reference-service-
limits): at most ``twin_writes_per_second`` create/update/delete operations on one twin (ADT: 10/s, not adjustable),
and per process ``patches_per_second``, ``reads_per_second`` and ``creates_deletes_per_second`` (ADT: 1,000, 1,000 and
500 per ADT instance). Each limit is a sliding window: no more than the rate in any window of one second plus a
small guard (``guard``), so clock skew between us and the service cannot make a burst look like one too many.

Latest value wins, nothing lost, nothing reordered. Writes to one twin queue in arrival order behind one *leader*
(the first caller), which waits for the twin's next slot and then takes every write that queued meanwhile. Two
queued patches conditional on the same ETag cannot both succeed at the service — the first changes the ETag and the
second gets 412 — so only the latest is sent, and the earlier ones get ``TwinConflict`` without a request: the answer
the service would give. The applier (shared/twins/applier.py) then re-reads the twin and plans from the latest
shadow, which already holds those events' values (the shadow is committed before the write): no update is lost,
and since every sent patch is conditional on the ETag the previous write produced, writes reach the twin in order —
a stale patch can never follow a newer one. A patch conditional on an ETag one of our own writes already replaced is
answered 412 the same way. Freshness rules are not touched: what to write is still decided from the shadow.

Bounded staleness: a write waits at most for the slots of the (coalesced) writes queued before it; a wait that would
not fit in the invocation's remaining budget (shared/twins/deadline.py) is refused at once as transient, so the
broker redelivers instead of the invocation overrunning Event Grid's 30 s.

429: ``throttled(seconds)`` (called by the ADT adapter for every 429 it sees, with the ``Retry-After``) holds every
write and read of the process until then — the back-off is shared by all in-flight calls, not discovered by each.

Works for every door: it is a TwinStore, wired once in shared/wiring.py. It sees one process only; with several
app instances writing to one ADT instance, divide the instance rates by their number (the per-twin rate holds as
long as a twin's events reach one instance at a time — mostly, since retries and 429 back-off cover the rest).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from shared.errors import Code, TransientError, TwinConflict
from shared.ports import TwinStore
from shared.settings.throughput import (
    ADT_CREATES_DELETES_PER_SECOND,
    ADT_PATCHES_PER_SECOND,
    ADT_READS_PER_SECOND,
    ADT_TWIN_WRITES_PER_SECOND,
)
from shared.twins import deadline

log = logging.getLogger("twinbridge.pacer")
T = TypeVar("T")

_MAX_LANES = 10_000  # idle per-twin lanes are dropped past this many
_RETIRED_ETAGS = 16  # per twin: ETags our own writes replaced (a patch on one of them would get 412)


class Throttled(TransientError):
    """A 429 from the twin store, with the service's ``Retry-After`` in seconds (None when it gave none)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(Code.ADT_THROTTLED, message)
        self.retry_after = retry_after


class Superseded(TwinConflict):
    """412 without a request: a newer write for the same twin version was sent instead, and has completed."""


@dataclass(frozen=True, slots=True)
class PacerLimits:
    twin_writes_per_second: float = ADT_TWIN_WRITES_PER_SECOND
    patches_per_second: float = ADT_PATCHES_PER_SECOND
    reads_per_second: float = ADT_READS_PER_SECOND
    creates_deletes_per_second: float = ADT_CREATES_DELETES_PER_SECOND
    guard: float = 0.05  # seconds added to each one-second window


class SlidingWindow:
    """At most ``count`` starts in any ``span`` seconds, and starts at least ``spacing`` apart. ``reserve`` books the
    earliest allowed start at or after ``now`` (bookings are made in order, so the log stays sorted)."""

    def __init__(self, rate: float, span: float, spacing: float = 0.0) -> None:
        self.count = max(1, int(rate))
        self.span = span
        self.spacing = spacing
        self._starts: deque[float] = deque(maxlen=self.count)

    def reserve(self, now: float) -> float:
        start = now
        if self._starts:
            start = max(start, self._starts[-1] + self.spacing)
            if len(self._starts) == self.count:
                start = max(start, self._starts[0] + self.span)
        self._starts.append(start)
        return start

    def started(self, at: float) -> None:
        """The last booked start actually happened at ``at`` (later than booked when the thread was kept waiting):
        the next bookings count from the real start, so a late start cannot put two requests too close together."""
        if self._starts and at > self._starts[-1]:
            self._starts[-1] = at

    def idle(self, now: float) -> bool:
        return not self._starts or self._starts[-1] + self.span <= now


@dataclass(eq=False)
class _Write:
    send: Callable[[], Any]
    base_etag: str | None  # a patch's If-Match ETag; None for anything that is not coalesced
    context: contextvars.Context
    done: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Lane:
    window: SlidingWindow
    cond: threading.Condition = field(default_factory=threading.Condition)
    busy: bool = False
    waiting: list[_Write] = field(default_factory=list)
    retired: deque[str] = field(default_factory=lambda: deque(maxlen=_RETIRED_ETAGS))


@dataclass
class PacerStats:
    sent: int = 0  # writes sent to the store
    superseded: int = 0  # patches answered 412 without a request (a newer one for the same ETag was sent)
    throttled: int = 0  # 429s reported
    waited_seconds: float = 0.0  # total time writes spent waiting for a slot
    max_wait_seconds: float = 0.0


class PacedTwinStore:
    """A TwinStore that paces and coalesces what it sends to ``inner`` (module docstring)."""

    def __init__(self, inner: TwinStore, limits: PacerLimits | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.inner = inner
        self.limits = limits = limits or PacerLimits()
        self.in_process = getattr(inner, "in_process", False) is True  # shared.ports.in_process sees through us
        self._clock = clock
        self._sleep = sleep
        span = 1.0 + limits.guard
        self._span = span
        self._lanes: dict[str, _Lane] = {}
        self._lanes_lock = threading.Lock()
        self._instance_lock = threading.Lock()
        self._patches = SlidingWindow(limits.patches_per_second, span)
        self._reads = SlidingWindow(limits.reads_per_second, span)
        self._creates_deletes = SlidingWindow(limits.creates_deletes_per_second, span)
        self._hold_until = 0.0
        self.stats = PacerStats()

    # ---- 429 ----------------------------------------------------------------------------------------------------
    def throttled(self, retry_after: float | None) -> None:
        """The service answered 429: every call of this process waits until ``retry_after`` (default 1 s) is over."""
        seconds = 1.0 if retry_after is None or retry_after <= 0 else min(retry_after, 60.0)
        with self._instance_lock:
            self._hold_until = max(self._hold_until, self._clock() + seconds)
            self.stats.throttled += 1
        log.warning("Azure Digital Twins throttled us: every twin call waits %.2f s", seconds)

    # ---- reads --------------------------------------------------------------------------------------------------
    def get_twin(self, twin_id: str) -> dict[str, Any] | None:
        return self._read(lambda: self.inner.get_twin(twin_id))

    def list_twins(self) -> Iterator[dict[str, Any]]:
        self._wait_for(self._book(self._reads), "list twins")
        return self.inner.list_twins()

    def list_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        return self._read(lambda: self.inner.list_relationships(twin_id))

    def list_incoming_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        return self._read(lambda: self.inner.list_incoming_relationships(twin_id))

    # ---- writes -------------------------------------------------------------------------------------------------
    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str:
        return self._write(twin_id, self._creates_deletes, lambda: self.inner.create_twin(twin_id, document), None)

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        return self._write(twin_id, self._patches, lambda: self.inner.patch_twin(twin_id, patch, etag), etag)

    def delete_twin(self, twin_id: str, etag: str | None = None) -> None:
        self._write(twin_id, self._creates_deletes, lambda: self.inner.delete_twin(twin_id, etag), None)

    def upsert_relationship(self, twin_id: str, relationship_id: str, relationship: dict[str, Any]) -> str:
        return self._write(twin_id, self._creates_deletes,
                           lambda: self.inner.upsert_relationship(twin_id, relationship_id, relationship), None)

    def delete_relationship(self, twin_id: str, relationship_id: str) -> None:
        self._write(twin_id, self._creates_deletes,
                    lambda: self.inner.delete_relationship(twin_id, relationship_id), None)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)  # adapter extras (e.g. the embedded graph's helpers), unpaced

    # ---- machinery ----------------------------------------------------------------------------------------------
    def _read(self, call: Callable[[], T]) -> T:
        self._wait_for(self._book(self._reads), "read")
        return self._sending(call)

    def _book(self, window: SlidingWindow) -> float:
        with self._instance_lock:
            return window.reserve(max(self._clock(), self._hold_until))

    def _wait_for(self, start: float, what: str) -> float:
        """Sleep until ``start`` (and any 429 hold); refuse at once a wait the invocation's budget cannot afford."""
        waited = 0.0
        while True:
            now = self._clock()
            wait = max(start, self._hold_until) - now
            if wait <= 0:
                return waited
            left = deadline.remaining()
            if left is not None and wait > left:
                raise TransientError(Code.ADT_THROTTLED, f"{what}: the next slot is {wait:.2f} s away, past the "
                                                         "invocation's time budget")
            self._sleep(wait)
            waited += wait

    def _sending(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except Throttled as exc:
            self.throttled(exc.retry_after)
            raise

    def _lane(self, twin_id: str) -> _Lane:
        with self._lanes_lock:
            lane = self._lanes.get(twin_id)
            if lane is None:
                if len(self._lanes) >= _MAX_LANES:
                    self._prune()
                rate = self.limits.twin_writes_per_second
                lane = self._lanes[twin_id] = _Lane(SlidingWindow(rate, self._span, spacing=1.0 / rate))
            return lane

    def _prune(self) -> None:
        now = self._clock()
        for twin_id in [k for k, lane in self._lanes.items()
                        if not lane.busy and not lane.waiting and lane.window.idle(now)]:
            del self._lanes[twin_id]

    def _write(self, twin_id: str, window: SlidingWindow, send: Callable[[], T], base_etag: str | None) -> T:
        lane = self._lane(twin_id)
        me = _Write(send, base_etag, contextvars.copy_context())
        with lane.cond:
            lane.waiting.append(me)
            while lane.busy and not me.done:
                lane.cond.wait()
            if not me.done:
                lane.busy = True  # the leader: sends what queued for this twin, then hands over
        if not me.done:
            try:
                self._lead(twin_id, lane, window)
            finally:
                with lane.cond:
                    lane.busy = False
                    lane.cond.notify_all()
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[no-any-return]

    def _lead(self, twin_id: str, lane: _Lane, window: SlidingWindow) -> None:
        arrived = self._clock()
        with lane.cond:
            start = lane.window.reserve(max(arrived, self._hold_until))
        try:
            self._wait_for(start, f"write to {twin_id}")
        except TransientError as exc:
            with lane.cond:
                group, lane.waiting = lane.waiting, []
            _finish(group, error=exc)
            return
        with lane.cond:
            group, lane.waiting = lane.waiting, []  # everything that queued while we waited for the slot
        first = True
        for index, write in enumerate(group):
            if write.base_etag is not None and (
                    write.base_etag in lane.retired
                    or any(later.base_etag == write.base_etag for later in group[index + 1:])):
                # The service would answer 412 (module docstring): say so without spending a request.
                write.error = Superseded(f"PATCH {twin_id}: superseded by a newer write for the same ETag")
                write.done = True
                self.stats.superseded += 1
                continue
            try:
                if not first:
                    with lane.cond:
                        start = lane.window.reserve(self._clock())
                    self._wait_for(start, f"write to {twin_id}")
                self._wait_for(self._book(window), f"write to {twin_id}")
                first = False
                waited = self._clock() - arrived
                self.stats.waited_seconds += waited
                self.stats.max_wait_seconds = max(self.stats.max_wait_seconds, waited)
                self.stats.sent += 1
                with lane.cond:
                    lane.window.started(self._clock())  # writes to one twin are serial: this is the real start
                write.result = write.context.run(self._sending, write.send)
                if write.base_etag is not None:
                    lane.retired.append(write.base_etag)
            except BaseException as exc:  # delivered to the caller whose write it was
                write.error = exc
            write.done = True


def _finish(group: list[_Write], *, error: BaseException) -> None:
    for write in group:
        write.error = error
        write.done = True
