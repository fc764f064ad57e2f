"""Routes config validation (clear errors with paths) and the transforms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.egress.config import EventGridEndpoint, ServiceBusEndpoint, Transform, load_egress
from shared.egress.notifications import read_notification
from shared.egress.router import match
from shared.egress.transforms import PROPERTY_CHANGE_TYPE, property_changes
from shared.errors import ConfigError
from shared.settings.app_config import AppConfig
from tests.egress import adt

EXAMPLE = Path(__file__).resolve().parents[2] / "demo" / "routes.example.yaml"
UPDATE = "type = 'Microsoft.DigitalTwins.Twin.Update'"


def _sections(**extra: Any) -> dict[str, Any]:
    return {"endpoints": {"local": {"kind": "file", "path": "out.jsonl"}},
            "routes": [{"name": "all", "filter": "true", "endpoint": "local"}], **extra}


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_egress(data)
    return [str(p) for p in info.value.problems]


def test_the_shipped_example_loads_through_the_app_config() -> None:
    egress = load_egress(AppConfig.load(EXAMPLE).sections)
    assert [r.name for r in egress.routes] == ["room-temperatures", "lifecycle", "locations", "everything-local"]
    assert egress.routes[0].transform is Transform.PROPERTY_CHANGES
    assert isinstance(egress.endpoints["workflow"], ServiceBusEndpoint) and egress.endpoints["workflow"].sessions
    assert isinstance(egress.endpoints["maps"], EventGridEndpoint) and egress.endpoints["maps"].schema_ == "cloudevents"
    assert [r.config.mode.value for r in egress.rules] == ["avg", "copy"]


def test_a_bad_filter_is_reported_with_its_route_index_and_position() -> None:
    routes = [{"name": f"r{i}", "filter": "true", "endpoint": "local"} for i in range(2)]
    routes.append({"name": "r2", "filter": f"{UPDATE} AN $body.modelId = 'x'", "endpoint": "local"})
    problems = _problems(_sections(routes=routes))
    assert len(problems) == 1 and problems[0].startswith("routes[2].filter: ") and "position" in problems[0]


def test_every_problem_is_listed_at_once() -> None:
    problems = _problems({
        "endpoints": {"hub": {"kind": "eventhub"}, "bus": {"kind": "servicebus", "namespace": "n"},
                      "grid": {"kind": "eventgrid", "endpoint": "ftp://x"}, "odd": {"kind": "kafka"}},
        "routes": [{"name": "a", "filter": "true", "endpoint": "hub", "transform": "flatten"},
                   {"name": "bad name!", "filter": "type = ", "endpoint": "hub"}],
        "propagation": [{"name": "p", "filter": "true", "relationship": "contains", "source": "Temperature",
                         "target": "/T", "mode": "median"}],
    })
    paths = {p.split(": ")[0] for p in problems}
    assert {"endpoints.hub.eventhub", "endpoints.bus", "endpoints.grid.endpoint", "endpoints.odd",
            "routes[0].transform", "routes[1].name", "routes[1].filter", "propagation[0].source",
            "propagation[0].mode"} <= paths, problems


def test_cross_references_unknown_endpoint_and_duplicate_names() -> None:
    routes = [{"name": "a", "filter": "true", "endpoint": "local"},
              {"name": "a", "filter": "true", "endpoint": "nowhere"}]
    assert _problems(_sections(routes=routes)) == [
        "routes[1].name: duplicate name 'a'",
        "routes[1].endpoint: unknown endpoint 'nowhere' (endpoints: local)",
    ]


def test_property_changes_one_record_per_property_with_source_time() -> None:
    patch = [adt.replace("/Temperature", 21.5),
             {"op": "add", "path": "/$metadata/Temperature/sourceTime", "value": "2026-11-23T09:59:58.5Z"},
             {"op": "add", "path": "/thermostat/setPoint", "value": 20},
             {"op": "remove", "path": "/Humidity"}]
    n = read_notification(adt.to_eventgrid(adt.twin_update("room-1", patch, nid="n-7", second=2)))
    assert property_changes(n) == [
        {"twinId": "room-1", "modelId": adt.ROOM, "property": "/Temperature", "op": "replace", "value": 21.5,
         "sourceTime": "2026-11-23T09:59:58.5Z", "notificationId": "n-7"},
        {"twinId": "room-1", "modelId": adt.ROOM, "property": "/thermostat/setPoint", "op": "add", "value": 20,
         "sourceTime": n.time, "notificationId": "n-7"},
        {"twinId": "room-1", "modelId": adt.ROOM, "property": "/Humidity", "op": "remove", "value": None,
         "sourceTime": n.time, "notificationId": "n-7"},
    ]
    assert property_changes(read_notification(adt.twin_lifecycle("room-1"))) == []


def test_match_and_transform_outputs() -> None:
    egress = load_egress({
        "endpoints": {"local": {"kind": "file", "path": "x"}},
        "routes": [{"name": "raw", "filter": UPDATE, "endpoint": "local"},
                   {"name": "props", "filter": f"{UPDATE} AND $body.modelId = '{adt.ROOM}'", "endpoint": "local",
                    "transform": "property-changes"},
                   {"name": "floors", "filter": f"$body.modelId = '{adt.FLOOR}'", "endpoint": "local"}],
    })
    ce = adt.twin_update("room-1", [adt.replace("/T", 1), adt.replace("/H", 40)], nid="n-1")
    names, messages = match(egress, read_notification(ce))
    assert names == ["raw", "props"]
    assert [(m.key, m.message_id, m.partition_key) for m in messages] == [
        (f"{adt.SOURCE}|n-1|raw", "n-1:raw", "room-1"),
        (f"{adt.SOURCE}|n-1|props#0", "n-1:props:0", "room-1"),
        (f"{adt.SOURCE}|n-1|props#1", "n-1:props:1", "room-1"),
    ]
    assert messages[0].event == ce  # passthrough: the CloudEvent as received
    assert messages[2].event["type"] == PROPERTY_CHANGE_TYPE and messages[2].event["data"]["property"] == "/H"
    assert messages[2].event["id"] == "n-1:1" and messages[2].event["subject"] == "room-1"
