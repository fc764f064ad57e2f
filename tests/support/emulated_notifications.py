"""Notifications produced by the ADT emulator itself (engine + event route delivery), for the egress reader's tests.

One scenario of writes runs on a ``TwinGraph`` with a ``RouteDispatcher`` delivering a ``true`` route to three JSON
Lines endpoints — CloudEvents, Event Grid schema and the AMQP property form — so each test reads the very lines an
endpoint of ``adt serve --endpoints`` receives, in each schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shared.adapters.twins.embedded import TwinGraph
from shared.adapters.twins.embedded.graph import TRACEPARENT
from twinbridge.adt.endpoints import Endpoint, RouteDispatcher

HOST = "127.0.0.1:44300"
TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
ROOM = "dtmi:test:Room;1"
FLOOR = "dtmi:test:Floor;1"
MODELS = [
    {"@id": ROOM, "@type": "Interface", "@context": "dtmi:dtdl:context;3",
     "contents": [{"@type": "Property", "name": "Temperature", "schema": "double"},
                  {"@type": "Telemetry", "name": "reading", "schema": "double"},
                  {"@type": "Component", "name": "sensor", "schema": "dtmi:test:Sensor;1"}]},
    {"@id": "dtmi:test:Sensor;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
     "contents": [{"@type": "Property", "name": "level", "schema": "double"}]},
    {"@id": FLOOR, "@type": "Interface", "@context": "dtmi:dtdl:context;3",
     "contents": [{"@type": "Property", "name": "AverageTemperature", "schema": "double"},
                  {"@type": "Relationship", "name": "contains",
                   "properties": [{"@type": "Property", "name": "since", "schema": "string"}]}]},
]


@dataclass
class Emitted:
    cloudevents: list[dict[str, Any]]
    eventgrid: list[dict[str, Any]]
    amqp: list[tuple[dict[str, Any], bytes]]

    def of_type(self, kind: str) -> tuple[dict[str, Any], dict[str, Any], tuple[dict[str, Any], bytes]]:
        """The first notification of ``kind`` in each of the three forms (same notification, same index)."""
        index = next(i for i, e in enumerate(self.cloudevents) if e["type"] == kind)
        return self.cloudevents[index], self.eventgrid[index], self.amqp[index]


def emit(tmp: Path, *, component_telemetry: bool = False) -> Emitted:
    files = {schema: tmp / f"{schema}.jsonl" for schema in ("cloudevents", "eventgrid", "amqp")}
    graph = TwinGraph()
    dispatcher = RouteDispatcher(graph, {s: Endpoint(s, "jsonl", s, path=str(f)) for s, f in files.items()}, HOST)
    token = TRACEPARENT.set(TRACE)
    try:
        graph.add_models(MODELS)
        for schema in files:
            graph.put_event_route(f"all-{schema}", {"endpointName": schema, "filter": "true"})
        graph.put_twin("floor1", {"$metadata": {"$model": FLOOR}})
        graph.put_twin("room1", {"$metadata": {"$model": ROOM}, "Temperature": 20.5, "sensor": {
            "$metadata": {}, "level": 1.0}})
        graph.put_relationship("floor1", "floor1-room1", {"$targetId": "room1", "$relationshipName": "contains",
                                                          "since": "2026"})
        graph.patch_twin("room1", [{"op": "replace", "path": "/Temperature", "value": 22.0}])
        graph.patch_relationship("floor1", "floor1-room1", [{"op": "replace", "path": "/since", "value": "2027"}])
        graph.send_telemetry("room1", {"reading": 22.0}, "msg-1")
        if component_telemetry:
            graph.send_telemetry("room1", {"level": 2.0}, "msg-2", component="sensor")
        graph.delete_relationship("floor1", "floor1-room1")
        graph.delete_twin("room1")
    finally:
        TRACEPARENT.reset(token)
    assert dispatcher.drain(10), "the emulator did not deliver its notifications"
    dispatcher.close()
    graph.close()

    def lines(path: Path) -> list[Any]:
        return [orjson.loads(line) for line in path.read_bytes().splitlines()]

    amqp = [(rec["properties"], orjson.dumps(rec["body"])) for rec in lines(files["amqp"])]
    return Emitted(lines(files["cloudevents"]), lines(files["eventgrid"]), amqp)
