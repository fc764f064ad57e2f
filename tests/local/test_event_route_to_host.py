"""The emulator's event route webhook delivering to the local host's ``route_twin_changes``, in both schemas: every
notification forwarded once by the app's route (validation handshake included), the same records either way."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from shared.adapters.twins.embedded import TwinGraph
from shared.adapters.twins.embedded.graph import TRACEPARENT
from tests.support.emulated_notifications import FLOOR, HOST, MODELS
from twinbridge.adt.endpoints import Endpoint, RouteDispatcher
from twinbridge.localhost.runtime import start_local_host
from twinbridge.localhost.server import RunningHost

pytestmark = pytest.mark.integration


@pytest.fixture
def host(tmp_path: Path) -> Iterator[tuple[RunningHost, Path]]:
    saved = dict(os.environ)
    for name in [k for k in os.environ if k.startswith(("TWINBRIDGE_", "ADT_"))]:
        del os.environ[name]
    config = tmp_path / "config.json"
    config.write_bytes(orjson.dumps({
        "endpoints": {"out": {"kind": "file", "path": str(tmp_path / "out.jsonl")}},
        "routes": [{"name": "all", "filter": "true", "endpoint": "out"}]}))
    settings = tmp_path / "local.settings.json"
    settings.write_bytes(orjson.dumps({"IsEncrypted": False, "Values": {
        "TWINBRIDGE_CONFIG": str(config), "TWINBRIDGE_STATE_STORE": "memory",
        "ADT_URL": f"https://{HOST}", "ADT_CREDENTIAL": "emulator",  # the instance the notifications come from
        "AzureWebJobs.ingest_iothub_stream.Disabled": "true",
        "AzureWebJobs.route_twin_changes_eventhub.Disabled": "true"}}))
    running = start_local_host(settings_path=settings, port=0, outputs_dir=tmp_path / "outputs")
    try:
        yield running, tmp_path / "out.jsonl"
    finally:
        running.stop()
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize("schema", ["eventgrid", "cloudevents"])
def test_route_twin_changes_receives_the_emulators_deliveries(host: tuple[RunningHost, Path], schema: str) -> None:
    running, out = host
    graph = TwinGraph()
    url = f"{running.url}/runtime/webhooks/eventgrid?functionName=route_twin_changes"
    dispatcher = RouteDispatcher(graph, {"app": Endpoint("app", "webhook", schema, url=url, lanes=2)}, HOST)
    token = TRACEPARENT.set(None)
    try:
        graph.add_models(MODELS)
        graph.put_event_route("to-app", {"endpointName": "app", "filter": "true"})
        graph.put_twin("floor1", {"$metadata": {"$model": FLOOR}})
        graph.put_twin("room1", {"$metadata": {"$model": "dtmi:test:Room;1"}, "Temperature": 1.0,
                                 "sensor": {"$metadata": {}}})
        graph.put_relationship("floor1", "r1", {"$targetId": "room1", "$relationshipName": "contains"})
        for value in range(5):
            graph.patch_twin("room1", [{"op": "replace", "path": "/Temperature", "value": float(value)}])
        graph.send_telemetry("room1", {"reading": 3.0}, "msg-1")
        graph.send_telemetry("room1", {"level": 3.0}, "msg-2", component="sensor")
    finally:
        TRACEPARENT.reset(token)
    assert dispatcher.drain(30)
    stats = dispatcher.snapshot()["endpoints"]["app"]
    dispatcher.close()
    assert stats["delivered"] == 10 and "deadlettered" not in stats
    forwarded = [orjson.loads(line)["event"] for line in out.read_bytes().splitlines()]
    assert len(forwarded) == 10 and len({e["id"] for e in forwarded}) == 10
    assert {e["source"] for e in forwarded if e["type"] != "microsoft.iot.telemetry"} == {HOST}
    telemetry = [e for e in forwarded if e["type"] == "microsoft.iot.telemetry"]
    assert {e["source"] for e in telemetry} == {f"{HOST}/digitaltwins/room1"}
    updates = [e["data"]["patch"][0]["value"] for e in forwarded if e["type"].endswith("Twin.Update")]
    assert updates == [0.0, 1.0, 2.0, 3.0, 4.0]  # one twin, one lane: in write order
