"""The doors (through the azure-functions converters the worker uses) with the real wiring, and the route CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.eventhub import EventHubTriggerConverter
from azure.functions.meta import Datum

from functions import route_twin_changes as door
from functions.runtime import use_app
from shared.errors import TransientError
from shared.settings.environment import Settings
from shared.wiring import build_app
from tests.egress import adt

ROOT = Path(__file__).resolve().parents[2]
UPDATE = "type = 'Microsoft.DigitalTwins.Twin.Update'"


@pytest.fixture
def egress_app(tmp_path: Path) -> Iterator[Path]:
    config = {"endpoints": {"local": {"kind": "file", "path": str(tmp_path / "egress.jsonl")}},
              "routes": [{"name": "updates", "filter": UPDATE, "endpoint": "local", "transform": "property-changes"},
                         {"name": "telemetry", "filter": "type = 'microsoft.iot.telemetry' AND "
                          f"dataschema = '{adt.ROOM}'", "endpoint": "local"}]}
    path = tmp_path / "app.yaml"
    path.write_text(yaml.safe_dump(config))
    use_app(build_app(Settings(config_path=str(path), quarantine_file=str(tmp_path / "q.jsonl"))))
    yield tmp_path
    use_app(None)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def _eventgrid(body: dict[str, Any]) -> Any:
    return EventGridEventInConverter.decode(Datum(type="json", value=json.dumps(body)), trigger_metadata=None)


def test_event_grid_door_both_schemas_and_redelivery(egress_app: Path) -> None:
    ce = adt.twin_update("room-1", [adt.replace("/Temperature", 21.5)], nid="n1")
    door.route_twin_changes(_eventgrid(adt.to_eventgrid(ce)))
    door.route_twin_changes(_eventgrid(adt.to_eventgrid(ce)))  # Event Grid redelivers: not forwarded again
    door.route_twin_changes(_eventgrid(adt.telemetry("room-1", {"Temperature": 21.5}, nid="m1")))
    out = _lines(egress_app / "egress.jsonl")
    assert [o["message_id"] for o in out] == ["n1:updates:0", "m1:telemetry"]
    assert out[0]["event"]["data"]["value"] == 21.5
    assert out[1]["event"]["dataschema"] == adt.ROOM  # kept by the door's conversion, used by the route filter


def test_event_grid_door_quarantines_bad_notifications(egress_app: Path) -> None:
    bad = adt.twin_update("room-1", [{"op": "replace", "path": "/T"}], nid="bad")
    door.route_twin_changes(_eventgrid(bad))
    [record] = _lines(egress_app / "q.jsonl")
    assert (record["code"], record["source"], record["problems"][0]["path"]) == ("SCHEMA_INVALID", "egress",
                                                                               "data.patch[0].value")


def test_event_hubs_door_reads_the_cloudevents_amqp_binding(egress_app: Path) -> None:
    events = [adt.twin_update("room-1", [adt.replace("/T", 1)], nid="e1"),
              adt.twin_update("room-2", [adt.replace("/T", 2)], nid="e2")]
    pairs = [adt.to_amqp(events[0], "cloudEvents:"), adt.to_amqp(events[1], "cloudEvents_")]
    metadata = {"PropertiesArray": Datum(json.dumps([p for p, _ in pairs]), "json"),
                "SystemPropertiesArray": Datum(json.dumps([{"SequenceNumber": i} for i in range(2)]), "json")}
    batch = EventHubTriggerConverter.decode(
        Datum(types.SimpleNamespace(string=[b.decode() for _, b in pairs]), "collection_string"),
        trigger_metadata=metadata)
    door.route_twin_changes_eventhub(batch)
    assert [o["message_id"] for o in _lines(egress_app / "egress.jsonl")] == ["e1:updates:0", "e2:updates:0"]


def test_a_sink_outage_raises_out_of_the_door(egress_app: Path) -> None:
    (egress_app / "egress.jsonl").mkdir()  # the file sink cannot append: transient
    with pytest.raises(TransientError):
        door.route_twin_changes(_eventgrid(adt.twin_update("room-1", [adt.replace("/T", 1)])))


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "twinbridge", "route", *args], cwd=ROOT, input=stdin,
                          capture_output=True, timeout=60)


def test_route_cli_dry_run(tmp_path: Path) -> None:
    update = adt.twin_update("room-1", [adt.replace("/Temperature", 21.5)], nid="n1")
    device = adt.twin_update("dev-1", [adt.replace("/location", "x")], model="dtmi:twinbridge:IoTDevice;1", nid="n2")
    rel = adt.relationship("floor-1", "r1", "room-1")
    notifications = tmp_path / "n.json"
    notifications.write_bytes(orjson.dumps([adt.to_eventgrid(update), device, rel]))
    run = _cli(str(notifications), "--routes", "demo/routes.example.yaml")
    assert run.returncode == 0, run.stderr
    assert [orjson.loads(line) for line in run.stdout.splitlines()] == [
        {"id": "n1", "type": "Microsoft.DigitalTwins.Twin.Update", "subject": "room-1",
         "routes": ["room-temperatures", "everything-local"]},
        {"id": "n2", "type": "Microsoft.DigitalTwins.Twin.Update", "subject": "dev-1",
         "routes": ["locations", "everything-local"]},
        {"id": rel["id"], "type": "Microsoft.DigitalTwins.Relationship.Create", "subject": "floor-1/relationships/r1",
         "routes": ["lifecycle", "everything-local"]},
    ]


def test_route_cli_json_lines_show_output_and_invalid_input(tmp_path: Path) -> None:
    update = adt.twin_update("room-1", [adt.replace("/Temperature", 21.5), adt.replace("/Humidity", 40)], nid="n1")
    stdin = orjson.dumps(update) + b"\n" + orjson.dumps({"specversion": "1.0", "id": "x", "source": "s",
                                                         "type": "Microsoft.DigitalTwins.Twin.Delete"}) + b"\n"
    run = _cli("-", "--routes", "demo/routes.example.yaml", "--show-output", stdin=stdin)
    assert run.returncode == 1  # one notification was invalid
    lines = [orjson.loads(line) for line in run.stdout.splitlines()]
    assert lines[0]["routes"] == ["room-temperatures", "everything-local"]
    assert [(o["route"], o["message_id"]) for o in lines[1:4]] == [
        ("room-temperatures", "n1:room-temperatures:0"), ("room-temperatures", "n1:room-temperatures:1"),
        ("everything-local", "n1:everything-local")]
    assert lines[1]["event"]["data"]["property"] == "/Temperature" and lines[3]["event"] == update
    assert lines[4]["routes"] == [] and lines[4]["error"]["code"] == "SCHEMA_INVALID"


def test_route_cli_reports_config_errors(tmp_path: Path) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text("routes:\n  - {name: a, filter: \"type = \", endpoint: nowhere}\n")
    run = _cli(str(tmp_path / "none.json"), "--routes", str(routes))
    assert run.returncode == 2
    assert b"routes[0].filter:" in run.stderr
