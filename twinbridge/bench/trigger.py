"""Issue 19's figures: the Event Grid trigger door (group commit) against the webhook door, a hot twin, throttling.

* ``run_doors``: the same 1,000-event deliveries over ``devices`` twins through (a) the trigger door, dispatched as
  the host does — every event of an array invoked at once with its JSON text, all on one event loop — and (b) the
  webhook door (one HTTP request per delivery), each against its own twin store with ``L`` ms per call, behind the
  write pacer and a store that answers 429 above ADT's limits. Warm-up: one delivery at zero latency (twins
  created, caches filled); then the deliveries are timed.
* ``run_hot_twin``: one twin, ``rate`` events per second for ``seconds`` through the trigger door, each its own
  invocation at its scheduled time. Writes per second as the store saw them (the highest count in any one-second
  window), the delay from each event to the first write showing it (or a newer value), the final value.
* ``run_window_cost``: single events at low traffic through the trigger door, with the configured window and with
  none: what the window adds to one invocation.
* ``ThrottlingStore``: answers 429 (``Throttled``, Retry-After 1 s) when a call would exceed ADT's documented
  limits in the past second: 10 writes per twin, 1,000 patches, 1,000 reads, 500 creates/deletes per instance.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import azure.functions as func
import orjson

from shared import wiring
from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.ingest.timeparse import ticks_to_iso
from shared.settings.app_config import AppConfig
from shared.settings.environment import Settings
from shared.settings.throughput import (
    ADT_CREATES_DELETES_PER_SECOND,
    ADT_PATCHES_PER_SECOND,
    ADT_READS_PER_SECOND,
    ADT_TWIN_WRITES_PER_SECOND,
    ThroughputSettings,
)
from shared.twins.write_pacer import Throttled
from shared.wiring import embedded_twin_store
from twinbridge.bench.slow_adt import SlowTwinStore
from twinbridge.bench.workload import PREFIX, START_TICKS, TICKS_PER_MS, TOPIC, Workload

EVENTS_PER_DELIVERY = 1000


class ThrottlingStore:
    """A twin store enforcing ADT's documented rate limits over a sliding second: past one, the call is not made
    and raises ``Throttled`` (429, Retry-After 1 s), as the ADT adapter reports it."""

    def __init__(self, inner: Any, per_twin: float = ADT_TWIN_WRITES_PER_SECOND,
                 patches: float = ADT_PATCHES_PER_SECOND, reads: float = ADT_READS_PER_SECOND,
                 creates_deletes: float = ADT_CREATES_DELETES_PER_SECOND) -> None:
        self.inner = inner
        self.limits = {"patch": int(patches), "read": int(reads), "create_delete": int(creates_deletes)}
        self.per_twin = int(per_twin)
        self.throttled = 0
        self.writes: dict[str, deque[float]] = {}
        self.log: dict[str, deque[float]] = {k: deque() for k in self.limits}
        self.applied: list[tuple[float, str, list[dict[str, Any]] | dict[str, Any]]] = []  # accepted writes
        self.admitted: dict[str, list[float]] = {}  # twin -> when each accepted write was admitted
        self._lock = threading.Lock()

    def _admit(self, kind: str, twin_id: str | None) -> None:
        now = time.monotonic()
        with self._lock:
            window = self.log[kind]
            while window and window[0] <= now - 1.0:
                window.popleft()
            twin = None
            if twin_id is not None:
                twin = self.writes.setdefault(twin_id, deque())
                while twin and twin[0] <= now - 1.0:
                    twin.popleft()
            if len(window) >= self.limits[kind] or (twin is not None and len(twin) >= self.per_twin):
                self.throttled += 1
                raise Throttled(f"429 {kind} {twin_id or ''}: over the documented limit", 1.0)
            window.append(now)
            if twin is not None and twin_id is not None:
                twin.append(now)
                self.admitted.setdefault(twin_id, []).append(now)

    def get_twin(self, twin_id: str) -> dict[str, Any] | None:
        self._admit("read", None)
        return self.inner.get_twin(twin_id)  # type: ignore[no-any-return]

    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str:
        self._admit("create_delete", twin_id)
        etag = str(self.inner.create_twin(twin_id, document))
        self._record(twin_id, document)
        return etag

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        self._admit("patch", twin_id)
        new_etag = str(self.inner.patch_twin(twin_id, patch, etag))
        self._record(twin_id, patch)
        return new_etag

    def delete_twin(self, twin_id: str, etag: str | None = None) -> None:
        self._admit("create_delete", twin_id)
        self.inner.delete_twin(twin_id, etag)

    def list_twins(self) -> Iterator[dict[str, Any]]:
        self._admit("read", None)
        return self.inner.list_twins()  # type: ignore[no-any-return]

    def list_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        self._admit("read", None)
        return self.inner.list_relationships(twin_id)  # type: ignore[no-any-return]

    def list_incoming_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        self._admit("read", None)
        return self.inner.list_incoming_relationships(twin_id)  # type: ignore[no-any-return]

    def upsert_relationship(self, twin_id: str, relationship_id: str, relationship: dict[str, Any]) -> str:
        self._admit("create_delete", twin_id)
        return str(self.inner.upsert_relationship(twin_id, relationship_id, relationship))

    def delete_relationship(self, twin_id: str, relationship_id: str) -> None:
        self._admit("create_delete", twin_id)
        self.inner.delete_relationship(twin_id, relationship_id)

    def _record(self, twin_id: str, what: Any) -> None:
        with self._lock:
            self.applied.append((time.monotonic(), twin_id, what))

    def write_count(self) -> int:
        with self._lock:
            return len(self.applied)


def _app(store: Any, models: ModelCatalog, settings: Settings, concurrency: int,
         known_twins: int) -> wiring.App:
    """An app as shared/wiring.py assembles one, over ``store`` behind the write pacer."""
    config = AppConfig.from_data({"topics": [TOPIC]})
    paced = wiring.pace(store, settings.throughput)
    state, quarantine = MemoryStateStore(), MemoryQuarantine()
    pipeline = wiring.build_pipeline(config, paced, catalog=models, state=state, quarantine=quarantine,
                                     max_concurrency=concurrency, known_twins=known_twins)
    return wiring.App(settings, config, models, paced, state, quarantine, pipeline)


@dataclass
class Stack:
    """One door's world: slow store ← 429 store ← pacer ← pipeline, installed as the doors' app."""

    slow: SlowTwinStore
    limits: ThrottlingStore
    app: wiring.App

    @classmethod
    def build(cls, models: ModelCatalog, latency_s: float, settings: Settings, concurrency: int,
              known_twins: int) -> Stack:
        slow = SlowTwinStore(embedded_twin_store(models), latency_s)
        limits = ThrottlingStore(slow)
        return cls(slow, limits, _app(limits, models, settings, concurrency, known_twins))


async def dispatch_array(door: Callable[[Any], Any], events_json: list[str]) -> int:
    """The host's Event Grid dispatch to a single-event function: every event's invocation at once, each given its
    event's JSON text (what the worker hands a ``str`` parameter through its generic binding), then 500 if any
    failed (Event Grid resends the whole array), else 202."""
    outcomes = await asyncio.gather(*(door(e) for e in events_json), return_exceptions=True)
    return 500 if any(isinstance(o, BaseException) for o in outcomes) else 202


@dataclass
class DoorFigures:
    events: int
    seconds: float
    writes: int
    statuses: dict[int, int] = field(default_factory=dict)
    throttled: int = 0
    batches: int = 0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def _deliveries(deliveries: int, devices: int, seed: int) -> list[list[bytes]]:
    return list(Workload(devices, seed).batches((deliveries + 1) * EVENTS_PER_DELIVERY, EVENTS_PER_DELIVERY))


def run_trigger(deliveries: list[list[bytes]], models: ModelCatalog, latency_s: float, settings: Settings,
                concurrency: int, known_twins: int) -> DoorFigures:
    from functions.ingest_iothub_events import ingest_iothub_events
    from functions.runtime import use_app

    stack = Stack.build(models, 0.0, settings, concurrency, known_twins)
    use_app(stack.app)
    arrays = [[raw.decode() for raw in delivery] for delivery in deliveries]
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(dispatch_array(ingest_iothub_events, arrays[0]))  # warm-up
        stack.slow.latency_s = latency_s
        writes, throttled, batches = stack.limits.write_count(), stack.limits.throttled, stack.app.ingest_commit.batches
        statuses: dict[int, int] = {}
        start = time.perf_counter()
        for array in arrays[1:]:
            status = loop.run_until_complete(dispatch_array(ingest_iothub_events, array))
            statuses[status] = statuses.get(status, 0) + 1
        seconds = time.perf_counter() - start
    finally:
        loop.close()
        stack.app.ingest_commit.close()
        use_app(None)
    events = sum(len(a) for a in arrays[1:])
    return DoorFigures(events, seconds, stack.limits.write_count() - writes, statuses,
                       stack.limits.throttled - throttled, stack.app.ingest_commit.batches - batches)


def run_webhook(deliveries: list[list[bytes]], models: ModelCatalog, latency_s: float, settings: Settings,
                concurrency: int, known_twins: int) -> DoorFigures:
    from functions.eventgrid_webhook import handle
    from functions.runtime import use_app

    stack = Stack.build(models, 0.0, settings, concurrency, known_twins)
    use_app(stack.app)
    bodies = [b"[" + b",".join(delivery) + b"]" for delivery in deliveries]

    def post(body: bytes) -> int:
        request = func.HttpRequest("POST", "http://localhost/api/eventgrid", body=body,
                                   headers={"aeg-event-type": "Notification", "content-type": "application/json"})
        return int(handle(request).status_code)

    try:
        post(bodies[0])  # warm-up
        stack.slow.latency_s = latency_s
        writes, throttled = stack.limits.write_count(), stack.limits.throttled
        statuses: dict[int, int] = {}
        start = time.perf_counter()
        for body in bodies[1:]:
            status = post(body)
            statuses[status] = statuses.get(status, 0) + 1
        seconds = time.perf_counter() - start
    finally:
        use_app(None)
    events = sum(len(d) for d in deliveries[1:])
    return DoorFigures(events, seconds, stack.limits.write_count() - writes, statuses,
                       stack.limits.throttled - throttled, len(bodies) - 1)


def run_doors(deliveries: int, devices: int, latency_ms: float, seed: int, concurrency: int, known_twins: int,
              models: ModelCatalog) -> tuple[DoorFigures, DoorFigures]:
    arrays = _deliveries(deliveries, devices, seed)
    settings = Settings.from_env()  # the group commit and pacer settings the app would run with
    trigger = run_trigger(arrays, models, latency_ms / 1000, settings, concurrency, known_twins)
    webhook = run_webhook(arrays, models, latency_ms / 1000, settings, concurrency, known_twins)
    return trigger, webhook


# ---- one hot twin -------------------------------------------------------------------------------------------------
HOT = "bench-hot-twin"


def hot_event(index: int, ticks: int, device: str = HOT) -> str:
    sysprops = {"iothub-connection-device-id": device, "iothub-enqueuedtime": ticks_to_iso(ticks)[:-5] + "Z",
                "iothub-message-source": "Telemetry", "iothub-content-type": "application/json",
                "iothub-content-encoding": "utf-8"}
    event = {"id": f"{device}-{index:06d}", "topic": TOPIC, "subject": f"devices/{device}", "eventType": PREFIX +
             "DeviceTelemetry", "eventTime": ticks_to_iso(ticks), "dataVersion": "", "metadataVersion": "1",
             "data": {"properties": {}, "systemProperties": sysprops, "body": {"temperature": index / 100}}}
    return orjson.dumps(event).decode()


@dataclass
class HotTwinFigures:
    events: int
    seconds: float
    writes: int
    max_writes_in_any_second: int
    writes_per_s: float
    staleness_p50_ms: float
    staleness_p99_ms: float
    staleness_max_ms: float
    final_value: Any
    last_sent: Any
    throttled: int
    failed_invocations: int


def _max_in_window(times: list[float], span: float = 1.0) -> int:
    best, first = 0, 0
    for last, t in enumerate(times):
        while t - times[first] >= span:
            first += 1
        best = max(best, last - first + 1)
    return best


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def run_hot_twin(rate: float, seconds: float, latency_ms: float, models: ModelCatalog, concurrency: int,
                 known_twins: int) -> HotTwinFigures:
    from functions.ingest_iothub_events import ingest_iothub_events
    from functions.runtime import use_app

    settings = Settings.from_env()  # the group commit and pacer settings the app would run with
    stack = Stack.build(models, latency_ms / 1000, settings, concurrency, known_twins)
    use_app(stack.app)
    count = int(rate * seconds)
    events = [hot_event(i, START_TICKS + int(i * 1000 / rate) * TICKS_PER_MS) for i in range(count)]
    sent_at: list[float] = [0.0] * count
    failures = 0

    async def drive() -> None:
        nonlocal failures
        loop = asyncio.get_running_loop()
        start = loop.time()
        tasks = []
        for i, event in enumerate(events):
            delay = start + i / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[i] = time.monotonic()
            tasks.append(asyncio.ensure_future(dispatch_array(ingest_iothub_events, [event])))
        statuses = await asyncio.gather(*tasks)
        failures = sum(1 for s in statuses if s != 202)

    try:
        started = time.monotonic()
        asyncio.run(drive())
        elapsed = time.monotonic() - started
    finally:
        stack.app.ingest_commit.close()
        use_app(None)
    writes = [(when, what) for when, twin, what in stack.limits.applied if twin == HOT]
    shown: list[tuple[float, int]] = []  # (when, highest event index the twin showed from then on)
    for when, what in writes:
        ops: list[dict[str, Any]] = what if isinstance(what, list) else [
            {"path": "/temperature", "value": what.get("temperature")}]
        for op in ops:
            value = op.get("value")
            if op.get("path") == "/temperature" and isinstance(value, int | float):
                shown.append((when, round(value * 100)))
    staleness = []
    for i, at in enumerate(sent_at):
        first = next((when for when, index in shown if index >= i), None)
        if first is not None:
            staleness.append((first - at) * 1000)
    times = stack.limits.admitted.get(HOT, [])  # when the store admitted each write: what its limit counts
    span = (times[-1] - times[0]) if len(times) > 1 else 1.0
    twin = stack.limits.inner.inner.get_twin(HOT) or {}
    return HotTwinFigures(
        events=count, seconds=elapsed, writes=len(writes), max_writes_in_any_second=_max_in_window(times),
        writes_per_s=len(writes) / span if span > 0 else float(len(writes)),
        staleness_p50_ms=_percentile(staleness, 0.5), staleness_p99_ms=_percentile(staleness, 0.99),
        staleness_max_ms=max(staleness, default=0.0), final_value=twin.get("temperature"),
        last_sent=(count - 1) / 100, throttled=stack.limits.throttled, failed_invocations=failures)


# ---- the window's cost at low traffic --------------------------------------------------------------------------
def run_window_cost(samples: int, gap_s: float, models: ModelCatalog, window_ms: float) -> tuple[float, float]:
    """Median wall time of one lone invocation (p50 ms) with ``window_ms`` and with a 0 ms window."""
    from functions.ingest_iothub_events import ingest_iothub_events
    from functions.runtime import use_app

    medians: list[float] = []
    for window in (window_ms, 0.0):
        settings = Settings(throughput=ThroughputSettings(group_commit_window_ms=window,
                                                          group_commit_max_wait_ms=max(window, 100.0)))
        stack = Stack.build(models, 0.0, settings, 1, 10_000)
        use_app(stack.app)
        durations: list[float] = []

        async def lone(i: int, durations: list[float] = durations) -> None:
            for k in range(samples + 1):
                started = time.perf_counter()
                # A device of its own each time: the write pacer's per-twin spacing is not what is measured here.
                device = f"lone-{i}-{k}"
                await ingest_iothub_events(hot_event(k, START_TICKS + k * TICKS_PER_MS, device))
                if k:  # the first one builds caches
                    durations.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(gap_s)

        try:
            asyncio.run(lone(len(medians)))
        finally:
            stack.app.ingest_commit.close()
            use_app(None)
        medians.append(_percentile(durations, 0.5))
    return medians[0], medians[1]


# ---- the bench command's part ----------------------------------------------------------------------------------
def register_args(parser: Any) -> None:
    """The bench options of these figures (twinbridge/commands/bench.py)."""
    parser.add_argument("--trigger-deliveries", type=int, default=10,
                        help="1,000-event deliveries through each Event Grid door (10; 0 = skip these figures)")
    parser.add_argument("--hot-rate", type=float, default=200.0, help="events per second to one twin (200)")
    parser.add_argument("--hot-seconds", type=float, default=10.0, help="seconds of the hot-twin stream (10)")
    parser.add_argument("--host-e2e-events", type=int, default=10_240,
                        help="events POSTed to each door of `python -m twinbridge host` (10240; 0 = skip)")


def figures(args: Any, models: ModelCatalog) -> dict[str, Any]:
    """trigger_* / hot_twin_* / throttled_requests / window cost / host end-to-end, as JSON-ready figures."""
    out: dict[str, Any] = {}
    if args.trigger_deliveries <= 0:
        return out
    trigger, webhook = run_doors(args.trigger_deliveries, args.devices, args.adt_latency_ms, args.seed,
                                 args.concurrency, args.known_twins, models)
    out.update({
        "trigger_deliveries": args.trigger_deliveries, "trigger_events_per_delivery": EVENTS_PER_DELIVERY,
        "trigger_events_per_s": round(trigger.events_per_s), "trigger_writes_per_event":
            round(trigger.writes / trigger.events, 4), "trigger_pipeline_batches": trigger.batches,
        "trigger_statuses": {str(k): v for k, v in trigger.statuses.items()},
        "webhook_events_per_s": round(webhook.events_per_s),
        "webhook_writes_per_event": round(webhook.writes / webhook.events, 4),
        "trigger_vs_webhook": round(trigger.events_per_s / webhook.events_per_s, 2),
    })
    hot = run_hot_twin(args.hot_rate, args.hot_seconds, args.adt_latency_ms, models, args.concurrency,
                       args.known_twins)
    out.update({
        "hot_twin_events": hot.events, "hot_twin_writes": hot.writes,
        "hot_twin_writes_per_s": round(hot.writes_per_s, 2),
        "hot_twin_max_writes_in_any_second": hot.max_writes_in_any_second,
        "hot_twin_per_twin_limit": ThroughputSettings().twin_writes_per_second,
        "hot_twin_staleness_p50_ms": round(hot.staleness_p50_ms, 1),
        "hot_twin_staleness_p99_ms": round(hot.staleness_p99_ms, 1),
        "hot_twin_staleness_max_ms": round(hot.staleness_max_ms, 1),
        "hot_twin_final_equals_last_sent": hot.final_value == hot.last_sent,
        "hot_twin_failed_invocations": hot.failed_invocations,
        "throttled_requests": trigger.throttled + webhook.throttled + hot.throttled,
    })
    window = Settings.from_env().throughput.group_commit_window_ms
    with_window, without = run_window_cost(30, 0.02, models, window)
    out.update({"lone_event_window_ms": window, "lone_event_p50_ms": round(with_window, 2),
                "lone_event_p50_ms_no_window": round(without, 2),
                "lone_event_window_cost_ms": round(with_window - without, 2)})
    if args.host_e2e_events > 0:
        from twinbridge.bench.host_e2e import run_host_e2e

        out.update(run_host_e2e(args.host_e2e_events, 200, args.seed, pacer="on"))
        out.update(run_host_e2e(args.host_e2e_events, 200, args.seed, pacer="off"))
    return out
