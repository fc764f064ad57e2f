"""The ADT emulator's event route webhook targeting the explorer's ``POST /api/notifications``: validated by the
handshake of its schema, every notification accepted, telemetry and relationships named by their twin."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shared.adapters.twins.embedded import TwinGraph
from tests.explorer.adt_double import AdtDouble
from tests.explorer.conftest import start_explorer
from tests.support.emulated_notifications import FLOOR, MODELS
from twinbridge.adt.endpoints import Endpoint, RouteDispatcher


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_emulator_route_delivers_to_the_explorer(adt: AdtDouble, schema: str) -> None:
    running = start_explorer(live="route")
    seen: list[dict[str, Any]] = []
    original = running.app.hub.publish
    running.app.hub.publish = lambda change: (seen.append(change), original(change))[1]  # type: ignore[method-assign]
    try:
        graph = TwinGraph()
        endpoint = Endpoint("explorer", "webhook", schema, url=f"{running.url}/api/notifications")
        dispatcher = RouteDispatcher(graph, {"explorer": endpoint}, "127.0.0.1:1")
        graph.add_models(MODELS)
        graph.put_event_route("live", {"endpointName": "explorer", "filter": "true"})
        graph.put_twin("floor1", {"$metadata": {"$model": FLOOR}})
        graph.put_twin("room1", {"$metadata": {"$model": "dtmi:test:Room;1"}, "sensor": {"$metadata": {}}})
        graph.put_relationship("floor1", "r1", {"$targetId": "room1", "$relationshipName": "contains"})
        graph.patch_twin("room1", [{"op": "add", "path": "/Temperature", "value": 21.5}])
        graph.send_telemetry("room1", {"reading": 1.0}, "m-1", component="sensor")
        assert dispatcher.drain(20)
        stats = dispatcher.snapshot()["endpoints"]["explorer"]
        dispatcher.close()
        deadline = time.monotonic() + 5
        while len(seen) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stats["delivered"] == 5 and "deadlettered" not in stats
        assert [(c["kind"], c["twinId"]) for c in seen] == [
            ("twin.create", "floor1"), ("twin.create", "room1"), ("relationship.create", "floor1"),
            ("twin.update", "room1"), ("telemetry", "room1")]
        assert seen[3]["patch"] == [{"op": "add", "path": "/Temperature", "value": 21.5}]
        assert running.app.hub.route_seen.is_set()
    finally:
        running.stop()
