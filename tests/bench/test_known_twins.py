"""The remembered-twin cache (TwinApplier known_twins) must never change what the twins end up showing."""

from __future__ import annotations

import orjson

from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.wiring import embedded_twin_store
from tests.support import event_factory as factory
from tests.support.rig import NetworkedGraph
from twinbridge.bench.measure import build_pipeline, catalog
from twinbridge.bench.workload import TOPIC, Workload


def _user(twin: dict) -> dict:
    return {k: v for k, v in twin.items() if not k.startswith("$")}


def _run(known: int, concurrency: int) -> tuple[list[dict], list[str], EmbeddedTwinStore]:
    models = catalog()
    graph = NetworkedGraph(models) if concurrency > 1 else embedded_twin_store(models)  # > 1: helper threads too
    pipeline = build_pipeline(graph, models, concurrency, known)
    patch = graph.patch_twin
    graph.removes = 0  # type: ignore[attr-defined]

    def counting_patch(twin_id: str, ops: list[dict], etag: str) -> str:
        graph.removes += sum(op["op"] == "remove" for op in ops)  # type: ignore[attr-defined]
        return patch(twin_id, ops, etag)

    graph.patch_twin = counting_patch  # type: ignore[method-assign]
    outcomes: list[str] = []
    # 5 devices, 2,000 events: deletions and re-creations, so some patches remove properties (23 remove ops).
    for batch in Workload(devices=5, seed=1).batches(2000, 50):
        report = pipeline.process([orjson.loads(raw) for raw in batch], [len(raw) for raw in batch])
        outcomes += [r.outcome.value for r in report.results]
    return [_user(t) for t in graph.list_twins()], outcomes, graph


def test_same_twins_and_outcomes_with_and_without_the_cache_and_the_pool():
    base_twins, base_outcomes, base_graph = _run(0, 1)
    assert base_graph.removes > 0  # the remembered content must follow removals too
    for known, concurrency in ((1000, 1), (1000, 8), (0, 8)):
        twins, outcomes, graph = _run(known, concurrency)
        assert (twins, outcomes) == (base_twins, base_outcomes)
    assert graph.calls["get"] == base_graph.calls["get"]
    _, _, cached = _run(1000, 8)
    assert cached.calls["get"] < base_graph.calls["get"] / 3  # the point of the cache: most GETs are skipped


def _telemetry(device: str, body: dict, second: int) -> dict:

    event = factory.telemetry(device, body, second=second)
    event["topic"] = TOPIC
    return event


def test_a_write_by_someone_else_is_not_lost_when_our_remembered_etag_is_stale():
    models = catalog()
    graph = embedded_twin_store(models)
    pipeline = build_pipeline(graph, models, 1, 1000)
    pipeline.process([_telemetry("d1", {"temperature": 1.0}, 1)])
    etag = graph.get_twin("d1")["$etag"]
    graph.patch_twin("d1", [{"op": "add", "path": "/humidity", "value": 50.0}], etag)  # another writer
    gets = graph.calls["get"]
    report = pipeline.process([_telemetry("d1", {"temperature": 2.0}, 2)])
    assert report.counts()["applied"] == 1
    twin = graph.get_twin("d1")
    assert (twin["temperature"], twin["humidity"]) == (2.0, 50.0)
    assert graph.calls["get"] > gets  # the 412 made it read the twin for real


def test_a_twin_deleted_behind_our_back_is_recreated_not_patched_blindly():
    models = catalog()
    graph = embedded_twin_store(models)
    pipeline = build_pipeline(graph, models, 1, 1000)
    pipeline.process([_telemetry("d1", {"temperature": 1.0}, 1)])
    graph.delete_twin("d1")
    report = pipeline.process([_telemetry("d1", {"temperature": 3.0}, 3)])
    assert report.counts()["applied"] == 1
    assert graph.get_twin("d1")["temperature"] == 3.0
