"""The measurements. Each returns plain figures; ``twinbridge/commands/bench.py`` prints them.

* core: every event's bytes parsed with orjson and run through ``Pipeline.process`` (guard, validation, mapping,
  freshness merge, state commit, planning, twin write) against the embedded twin graph with no latency, in batches.
  Generating the workload is not timed; nothing else is left out.
* parse floor: bare ``orjson.loads`` of the same bytes, batch by batch, in the same run.
* ADT latency: one batch through the pipeline against a twin store that sleeps ``L`` ms per call, and the same
  batch through the naive one-PATCH-per-event function (``naive.py``), both after a warm-up batch at zero latency
  (twins exist, caches are what a running instance has). The first (cold) batch is timed too.
* filters: a compiled 5-condition ``SubscriptionFilter`` over the workload's events.
"""

from __future__ import annotations

import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from shared import wiring
from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.settings.app_config import DEFAULT_DEVICE_MODEL, AppConfig
from shared.settings.environment import APP_ROOT
from shared.twins.pipeline import Pipeline
from twinbridge.bench.naive import naive_handle
from twinbridge.bench.slow_adt import SlowTwinStore
from twinbridge.bench.workload import TOPIC, Workload

BENCH_FILTER = {
    "includedEventTypes": ["Microsoft.Devices.DeviceTelemetry", "Microsoft.Devices.DeviceConnected",
                           "Microsoft.Devices.DeviceDisconnected"],
    "subjectBeginsWith": "devices/bench-",
    "advancedFilters": [
        {"operatorType": "NumberLessThan", "key": "data.body.temperature", "value": 34.5},
        {"operatorType": "StringIn", "key": "data.systemProperties.iothub-message-source", "values": ["Telemetry"]},
        {"operatorType": "BoolEquals", "key": "data.body.online", "value": True},
    ],
}


def catalog() -> ModelCatalog:
    return ModelCatalog.load_dir(Path(APP_ROOT) / "models")


def config() -> AppConfig:
    return AppConfig.from_data({"topics": [TOPIC]})


def build_pipeline(twins: object, models: ModelCatalog, max_concurrency: int, known_twins: int) -> Pipeline:
    return wiring.build_pipeline(config(), twins, catalog=models,  # type: ignore[arg-type]
                                 max_concurrency=max_concurrency, known_twins=known_twins)


@dataclass
class CoreFigures:
    events: int = 0
    seconds: float = 0.0
    floor_seconds: float = 0.0
    adt_writes: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    bytes_total: int = 0


def run_core(events: int, devices: int, batch_size: int, seed: int, max_concurrency: int,
             known_twins: int) -> CoreFigures:
    models = catalog()
    pipeline = build_pipeline(wiring.embedded_twin_store(models), models, max_concurrency, known_twins)
    figures = CoreFigures()
    loads = orjson.loads
    clock = time.perf_counter
    for batch in Workload(devices, seed).batches(events, batch_size):
        start = clock()
        for raw in batch:
            loads(raw)
        figures.floor_seconds += clock() - start
        start = clock()
        parsed = [loads(raw) for raw in batch]
        report = pipeline.process(parsed, [len(raw) for raw in batch])
        figures.seconds += clock() - start
        figures.events += len(batch)
        figures.bytes_total += sum(len(raw) for raw in batch)
        figures.adt_writes += report.twin_writes
        figures.outcomes.update(r.outcome.value for r in report.results)
    return figures


@dataclass
class LatencyFigures:
    batch_events: int
    batch_wall_s: float
    batch_cold_wall_s: float
    batch_adt_calls: int
    naive_batch_wall_s: float
    naive_adt_calls: int


def run_latency(batch_size: int, devices: int, latency_ms: float, seed: int, max_concurrency: int,
                known_twins: int, naive: bool = True) -> LatencyFigures:
    models = catalog()
    warm, measured = list(Workload(devices, seed + 1).batches(2 * batch_size, batch_size))
    latency = latency_ms / 1000

    store = SlowTwinStore(wiring.embedded_twin_store(models), latency)
    pipeline = build_pipeline(store, models, max_concurrency, known_twins)
    start = time.perf_counter()
    pipeline.process([orjson.loads(raw) for raw in warm], [len(raw) for raw in warm])
    cold = time.perf_counter() - start
    calls_before = store.calls
    start = time.perf_counter()
    pipeline.process([orjson.loads(raw) for raw in measured], [len(raw) for raw in measured])
    wall = time.perf_counter() - start
    calls = store.calls - calls_before

    if not naive:
        return LatencyFigures(len(measured), wall, cold, calls, 0.0, 0)
    naive_store = SlowTwinStore(wiring.embedded_twin_store(models), 0.0)
    for raw in warm:
        naive_handle(raw, naive_store, models, DEFAULT_DEVICE_MODEL)
    naive_store.latency_s = latency
    naive_before = naive_store.calls
    start = time.perf_counter()
    for raw in measured:
        naive_handle(raw, naive_store, models, DEFAULT_DEVICE_MODEL)
    naive_wall = time.perf_counter() - start
    return LatencyFigures(len(measured), wall, cold, calls, naive_wall, naive_store.calls - naive_before)


def run_filter(events: int, devices: int, seed: int, min_seconds: float = 0.5) -> tuple[float, float]:
    """Evaluations per second of the compiled bench filter, and the share of events it matches."""
    from shared.filters.event_grid import SubscriptionFilter

    compiled = SubscriptionFilter.from_dict(BENCH_FILTER)
    matches = compiled.matches
    sample = [orjson.loads(raw) for raw in Workload(devices, seed + 2).stream(min(events, 10_000))]
    matched = sum(1 for ev in sample if matches(ev))
    evaluations = 0
    start = time.perf_counter()
    elapsed = 0.0
    while elapsed < min_seconds:
        for ev in sample:
            matches(ev)
        evaluations += len(sample)
        elapsed = time.perf_counter() - start
    return evaluations / elapsed, matched / len(sample)


def peak_rss_mb(children: bool = False) -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    # ru_maxrss is KiB on Linux, bytes on macOS.
    return usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
