"""The write pacer (shared/twins/write_pacer.py): rates per twin and per process, latest-value-wins coalescing of
what waits (without losing, duplicating or reordering an update), Retry-After back-off shared by every call."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.state.memory import MemoryStateStore
from shared.errors import TransientError, TwinConflict
from shared.twins import deadline
from shared.twins.write_pacer import PacedTwinStore, PacerLimits, SlidingWindow, Throttled
from shared.wiring import build_pipeline, embedded_twin_store
from tests.support import event_factory as factory
from tests.support.rig import CATALOG, rig
from twinbridge.bench.trigger import _max_in_window


class Recording:
    """A twin store recording when each write reached it and what it wrote (inner: the embedded graph)."""

    def __init__(self, inner: Any, latency: float = 0.0) -> None:
        self.inner = inner
        self.latency = latency
        self.sent: list[tuple[float, str, str, Any]] = []  # (time, twin, kind, patch or document): every request
        self.applied: list[tuple[float, str, str, Any]] = []  # the writes the store accepted, in order
        self.lock = threading.Lock()
        self.throttle_next: list[float | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def _arrive(self, twin_id: str, kind: str, what: Any) -> None:
        with self.lock:
            self.sent.append((time.monotonic(), twin_id, kind, what))
            if self.throttle_next:
                raise Throttled("429 injected", self.throttle_next.pop(0))
        time.sleep(self.latency)

    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str:
        self._arrive(twin_id, "create", document)
        return str(self.inner.create_twin(twin_id, document))

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        self._arrive(twin_id, "patch", patch)
        with self.lock:  # accepted-or-refused and the record together: the order of `applied` is the twin's
            new_etag = str(self.inner.patch_twin(twin_id, patch, etag))
            self.applied.append((time.monotonic(), twin_id, "patch", patch))
        return new_etag

    def get_twin(self, twin_id: str) -> dict[str, Any] | None:
        return self.inner.get_twin(twin_id)  # type: ignore[no-any-return]


def max_in_window(times: list[float], span: float = 1.0) -> int:
    """The most of ``times`` inside any ``span`` seconds: the bench's own count (it takes the times in order)."""
    return _max_in_window(sorted(times), span)


def test_sliding_window_books_no_more_than_the_rate_in_any_span() -> None:
    window = SlidingWindow(10, 1.0, spacing=0.1)
    starts = [window.reserve(0.0) for _ in range(35)]
    assert starts == sorted(starts)
    assert max_in_window(starts) <= 10
    assert all(b - a >= 0.1 - 1e-9 for a, b in itertools.pairwise(starts))


def test_a_start_later_than_booked_moves_the_next_bookings() -> None:
    window = SlidingWindow(2, 1.0, spacing=0.5)
    assert window.reserve(0.0) == 0.0
    assert window.reserve(0.0) == 0.5
    window.started(0.9)  # the thread that booked 0.5 only got to send at 0.9
    assert window.reserve(0.0) == 1.4  # spaced from the real start (0.9), not from the booking (0.5)
    assert window.reserve(0.0) == 1.9


def test_a_write_sent_later_than_its_slot_does_not_crowd_the_next_ones() -> None:
    """A starved thread sends after its slot; the twin's later slots count from when it really sent."""
    now = [0.0]
    overslept = [False]
    sent: list[float] = []

    def sleep(seconds: float) -> None:
        now[0] += seconds + (0.0 if overslept[0] else 0.4)  # the first wait ends 0.4 s late
        overslept[0] = True

    class Store:
        def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
            sent.append(now[0])
            return f"e{len(sent)}"

    paced = PacedTwinStore(Store(), PacerLimits(twin_writes_per_second=2), clock=lambda: now[0],  # type: ignore[arg-type]
                           sleep=sleep)
    etag = "e0"
    for value in range(6):
        etag = paced.patch_twin("t", [{"op": "replace", "path": "/v", "value": value}], etag)
    assert max_in_window(sent) <= 2, sent


def test_one_twin_written_from_many_threads_stays_within_its_rate() -> None:
    graph = embedded_twin_store(CATALOG)
    recording = Recording(graph, latency=0.002)
    paced = PacedTwinStore(recording, PacerLimits(twin_writes_per_second=20))
    pipeline = build_pipeline(rig().pipeline.config, paced, catalog=CATALOG, state=MemoryStateStore(),
                              max_concurrency=1)
    pipeline.process([factory.lifecycle("hot", second=0)])

    def sender(offset: int) -> None:
        for i in range(30):
            second = 1 + offset + 8 * i
            pipeline.process([factory.telemetry("hot", {"temperature": second}, second=second)])
            time.sleep(0.01)  # a steady stream, not one burst

    threads = [threading.Thread(target=sender, args=(k,)) for k in range(8)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writes = [when for when, twin, _, _ in recording.sent if twin == "hot"]
    assert max_in_window(writes) <= 20
    assert graph.get_twin("hot")["temperature"] == 8 * 29 + 8  # the latest event, whatever the interleaving
    assert len(writes) < 8 * 30  # waiting writes were coalesced: fewer writes than events
    assert paced.stats.superseded > 0
    assert time.monotonic() - started < 20


class Gate:
    """A store whose first patch blocks until released: lets writes queue behind it deterministically."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.sent: list[tuple[str, str]] = []  # (base etag, value)
        self.etag = 0

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        if not self.sent:
            self.sent.append((etag, patch[0]["value"]))
            self.release.wait(5)
        else:
            self.sent.append((etag, patch[0]["value"]))
        self.etag += 1
        return f"e{self.etag}"


def _patch_in_thread(paced: PacedTwinStore, value: str, etag: str, out: dict[str, Any]) -> threading.Thread:
    def run() -> None:
        try:
            out[value] = paced.patch_twin("t", [{"op": "replace", "path": "/v", "value": value}], etag)
        except Exception as exc:
            out[value] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_of_queued_patches_on_one_etag_only_the_latest_is_sent_the_others_get_412_without_a_request() -> None:
    gate = Gate()
    paced = PacedTwinStore(gate, PacerLimits(twin_writes_per_second=1000))  # type: ignore[arg-type]
    out: dict[str, Any] = {}
    first = _patch_in_thread(paced, "first", "e0", out)
    while not gate.sent:
        time.sleep(0.001)
    queued = []
    for value in ("older", "newer"):  # both planned from the same twin version, e0 → e1 unknown to them
        queued.append(_patch_in_thread(paced, value, "e9", out))
        time.sleep(0.05)  # arrival order
    gate.release.set()
    for t in [first, *queued]:
        t.join(5)
    assert gate.sent == [("e0", "first"), ("e9", "newer")]  # "older" never reached the store
    assert isinstance(out["older"], TwinConflict)
    assert out["first"] == "e1" and out["newer"] == "e2"


def test_a_patch_on_an_etag_our_own_write_replaced_gets_412_without_a_request() -> None:
    gate = Gate()
    gate.release.set()
    paced = PacedTwinStore(gate, PacerLimits(twin_writes_per_second=1000))  # type: ignore[arg-type]
    assert paced.patch_twin("t", [{"op": "replace", "path": "/v", "value": 1}], "e0") == "e1"
    with pytest.raises(TwinConflict):
        paced.patch_twin("t", [{"op": "replace", "path": "/v", "value": 2}], "e0")
    assert len(gate.sent) == 1


def test_a_429_holds_every_call_for_its_retry_after() -> None:
    graph = embedded_twin_store(CATALOG)
    recording = Recording(graph)
    paced = PacedTwinStore(recording, PacerLimits())
    recording.throttle_next = [0.3]
    with pytest.raises(Throttled):
        paced.create_twin("a", {"$metadata": {"$model": "dtmi:twinbridge:IoTDevice;1"}})
    started = time.monotonic()
    paced.create_twin("b", {"$metadata": {"$model": "dtmi:twinbridge:IoTDevice;1"}})  # another twin: held too
    assert time.monotonic() - started >= 0.28
    assert paced.stats.throttled == 1


def test_a_wait_past_the_invocations_budget_is_refused_as_transient() -> None:
    gate = Gate()
    gate.release.set()
    paced = PacedTwinStore(gate, PacerLimits(twin_writes_per_second=1, guard=0.0))  # type: ignore[arg-type]
    paced.patch_twin("t", [{"op": "replace", "path": "/v", "value": 1}], "e0")
    with deadline.invocation_budget(0.2), pytest.raises(TransientError):
        paced.patch_twin("t", [{"op": "replace", "path": "/v", "value": 2}], "e1")  # next slot in 1 s
    assert len(gate.sent) == 1


# --- property: ordering and duplication under the pacer ---------------------------------------------------------

deliveries = st.lists(
    st.tuples(st.sampled_from(["p0", "p1", "p2"]), st.integers(min_value=1, max_value=40), st.booleans()),
    min_size=1, max_size=40)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=deliveries, parts=st.integers(min_value=1, max_value=4))
def test_concurrent_deliveries_through_the_pacer_lose_nothing_duplicate_nothing_never_go_back(
        events: list[tuple[str, int, bool]], parts: int) -> None:
    """Telemetry whose value is its own time, duplicated and shuffled, cut into deliveries processed at once from
    several threads over the pacer: each twin ends at its latest value, and the values written to a twin never go
    back in time (no stale write after a newer one), whatever was coalesced or answered 412 on the way."""
    graph = embedded_twin_store(CATALOG)
    recording = Recording(graph, latency=0.001)
    paced = PacedTwinStore(recording, PacerLimits(twin_writes_per_second=100))
    config = rig().pipeline.config
    state = MemoryStateStore()  # one state store, as every instance of the app shares one
    pipelines = [build_pipeline(config, paced, catalog=CATALOG, state=state, max_concurrency=2) for _ in range(parts)]
    setup = build_pipeline(config, paced, catalog=CATALOG, state=state)
    for device in ("p0", "p1", "p2"):
        setup.process([factory.lifecycle(device, second=0)])
    wire = []
    for device, second, twice in events:
        event = factory.telemetry(device, {"temperature": second}, second=second, event_id=f"{device}-{second}")
        wire += [event, event] if twice else [event]
    chunks = [wire[i::parts] for i in range(parts)]

    def deliver(index: int) -> None:
        for _ in range(3):  # a transient outcome is redelivered, as the broker would
            if not pipelines[index].process(chunks[index]).transient:
                return
        raise AssertionError("still transient after 3 deliveries")

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(parts)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for device in ("p0", "p1", "p2"):
        sent = [s for _, d, _, s in events_of(recording, device)]
        latest = max((s for d, s, _ in events if d == device), default=None)
        assert graph.get_twin(device).get("temperature") == latest
        assert sent == sorted(sent)  # never a value older than one already written
        assert len(sent) == len(set(sent))  # no value written twice
        assert max_in_window([w for w, d, _, _ in recording.sent if d == device]) <= 100


def events_of(recording: Recording, device: str) -> list[tuple[float, str, str, int]]:
    """The temperature values written to ``device``, in the order they reached the store."""
    out = []
    for when, twin, kind, what in recording.applied:
        if twin != device or kind != "patch":
            continue
        for op in what:
            if op["path"] == "/temperature":
                out.append((when, twin, kind, op["value"]))
    return out
