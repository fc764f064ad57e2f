"""The bench's workload and baseline are what they claim to be (no timing asserted here, ever)."""

from __future__ import annotations

import orjson

from shared.settings.app_config import DEFAULT_DEVICE_MODEL
from shared.wiring import embedded_twin_store
from tests.support import event_factory as factory
from twinbridge.bench.measure import build_pipeline, catalog, run_core, run_latency
from twinbridge.bench.naive import naive_handle
from twinbridge.bench.slow_adt import SlowTwinStore
from twinbridge.bench.workload import Workload


def test_same_seed_same_bytes_and_another_seed_other_bytes():
    a = list(Workload(10, seed=1).stream(200))
    assert a == list(Workload(10, seed=1).stream(200))
    assert a != list(Workload(10, seed=2).stream(200))


def test_mix_and_sizes_are_as_documented():
    workload = Workload(100, seed=5)
    sizes = [len(raw) for raw in workload.stream(20_000)]
    mix = workload.mix
    assert 0.88 < mix.json_telemetry / 20_000 < 0.92
    assert 0.04 < mix.base64_telemetry / 20_000 < 0.06
    assert 0.04 < (mix.connection + mix.lifecycle) / 20_000 < 0.06
    assert min(sizes) > 400 and max(sizes) < 1300 and 800 < sum(sizes) / len(sizes) < 1100


def test_events_have_the_documented_shapes():
    """Same keys, at every level that matters, as the factory's documented payloads."""
    samples = {orjson.loads(raw)["eventType"]: orjson.loads(raw) for raw in Workload(20, seed=9).stream(3000)}
    references = {
        "Microsoft.Devices.DeviceTelemetry": factory.telemetry("d", {"temperature": 1.0}),
        "Microsoft.Devices.DeviceConnected": factory.connection("d", 1),
        "Microsoft.Devices.DeviceDisconnected": factory.connection("d", 1, connected=False),
        "Microsoft.Devices.DeviceCreated": factory.lifecycle("d"),
        "Microsoft.Devices.DeviceDeleted": factory.lifecycle("d", created=False),
    }
    assert set(samples) == set(references)
    for event_type, ref in references.items():
        got = samples[event_type]
        assert set(got) == set(ref), event_type
        assert set(got["data"]) == set(ref["data"]), event_type


def test_every_bench_event_is_valid_and_applied_or_stale():
    figures = run_core(3000, 30, 500, seed=11, max_concurrency=4, known_twins=0)
    assert figures.events == 3000
    assert set(figures.outcomes) <= {"applied", "stale", "duplicate"}  # nothing quarantined, nothing filtered
    assert figures.outcomes["applied"] > 2800
    assert 0 < figures.adt_writes <= 30 * 6  # at most one write per twin per batch (plus the odd delete/create)


def test_naive_baseline_writes_one_patch_per_event_to_every_twin():
    models = catalog()
    naive = SlowTwinStore(embedded_twin_store(models))
    ours = embedded_twin_store(models)
    pipeline = build_pipeline(ours, models, 1, 0)
    events = [raw for raw in Workload(5, seed=4).stream(400)
              if b"DeviceTelemetry" in raw]  # in-order telemetry: both must agree on the last values
    calls = sum(naive_handle(raw, naive, models, DEFAULT_DEVICE_MODEL) for raw in events)
    assert calls == len(events) + 5  # one PATCH each, plus one create per device
    pipeline.process([orjson.loads(raw) for raw in events], [len(raw) for raw in events])
    for twin in ours.list_twins():
        other = naive.inner.get_twin(twin["$dtId"])
        assert other is not None
        assert twin.get("temperature") is not None and other.get("temperature") is not None


def test_latency_measurement_counts_calls_and_runs_both_paths():
    figures = run_latency(100, 10, 1.0, seed=3, max_concurrency=4, known_twins=0)
    assert figures.batch_events == 100
    assert figures.naive_adt_calls >= 100 - 10  # about one call per event (lifecycle/connection included)
    assert figures.batch_adt_calls <= 2 * 10 + 10  # about GET + PATCH per twin
    assert figures.naive_batch_wall_s > 0 and figures.batch_wall_s > 0
