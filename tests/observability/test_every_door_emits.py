"""The observability contract: every door that takes a batch (ingest and egress) emits the batch signals once —
``twinbridge.batches{door}``, ``twinbridge.events{outcome, door}`` per event and one summary line — through
``shared.observability.run_batch``; the egress router counts what its sinks accepted (``twinbridge.egress.sent``)."""

from __future__ import annotations

import asyncio
import json
import logging
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.eventhub import EventHubTriggerConverter
from azure.functions.meta import Datum

from functions import eventgrid_webhook, ingest_iothub_events, ingest_iothub_stream, route_twin_changes
from functions.runtime import use_app
from shared.observability import BATCHES, EGRESS_SENT, EVENTS, METRICS
from shared.settings.doors import DoorSettings
from shared.settings.environment import Settings
from shared.wiring import build_app
from tests.egress import adt
from tests.functions.helpers import as_eventgrid_wire, post
from tests.functions.test_ingest_iothub_stream import HUB, batch, message
from tests.support import event_factory as factory
from tests.support.rig import make_app

EGRESS_CONFIG = {"endpoints": {"local": {"kind": "file", "path": "{out}"}},
                 "routes": [{"name": "updates", "filter": "type = 'Microsoft.DigitalTwins.Twin.Update'",
                             "endpoint": "local"}]}


def _eventgrid(body: dict[str, Any]) -> Any:
    """What the worker hands route_twin_changes' func.EventGridEvent parameter (the library's converter)."""
    return EventGridEventInConverter.decode(Datum(type="json", value=json.dumps(body)), trigger_metadata=None)


def _amqp_batch(events: list[dict[str, Any]]) -> Any:
    pairs = [adt.to_amqp(e, "cloudEvents:") for e in events]
    metadata = {"PropertiesArray": Datum(json.dumps([p for p, _ in pairs]), "json"),
                "SystemPropertiesArray": Datum(json.dumps([{"SequenceNumber": i} for i in range(len(pairs))]),
                                               "json")}
    return EventHubTriggerConverter.decode(
        Datum(types.SimpleNamespace(string=[b.decode() for _, b in pairs]), "collection_string"),
        trigger_metadata=metadata)


def _ingest_events() -> None:
    # the ingest door binds str: the worker hands it the event's JSON text
    asyncio.run(ingest_iothub_events.ingest_iothub_events(json.dumps(factory.lifecycle("dev-1", second=1))))


def _webhook() -> None:
    body = orjson.dumps([as_eventgrid_wire(factory.lifecycle("dev-1", second=1)),
                         as_eventgrid_wire(factory.telemetry("dev-1", {"temperature": 2.0}, second=2))])
    assert eventgrid_webhook.eventgrid_webhook(post(body)).status_code == 200


def _stream() -> None:
    ingest_iothub_stream.ingest_iothub_stream(batch([message("dev-1", {"temperature": 3.0}, second=1),
                                                     message("dev-2", b"not json", second=2)]))


def _route_eventgrid() -> None:
    route_twin_changes.route_twin_changes(
        _eventgrid(adt.to_eventgrid(adt.twin_update("room-1", [adt.replace("/T", 1)], nid="n1"))))


def _route_eventhub() -> None:
    route_twin_changes.route_twin_changes_eventhub(_amqp_batch([
        adt.twin_update("room-1", [adt.replace("/T", 1)], nid="e1"),
        adt.twin_update("room-2", [adt.replace("/T", 2)], nid="e2")]))


DOORS: dict[str, tuple[Callable[[], None], int]] = {  # door → (one invocation, events in it)
    "ingest_iothub_events": (_ingest_events, 1),
    "eventgrid_webhook": (_webhook, 2),
    "ingest_iothub_stream": (_stream, 2),
    "route_twin_changes": (_route_eventgrid, 1),
    "route_twin_changes_eventhub": (_route_eventhub, 2),
}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Path]:
    config = json.loads(json.dumps(EGRESS_CONFIG).replace("{out}", str(tmp_path / "egress.jsonl")))
    (tmp_path / "app.yaml").write_text(yaml.safe_dump({"topics": [factory.TOPIC], **config}))
    ingest = make_app(doors=DoorSettings(iothub_resource_id=HUB, webhook_subscriptions=("twinbridge-sub",)))
    egress = build_app(Settings(config_path=str(tmp_path / "app.yaml")))
    ingest.egress = egress.egress  # one app serving both directions, as a deployed Function App does
    use_app(ingest)
    METRICS.reset()
    yield tmp_path
    use_app(None)
    METRICS.reset()


@pytest.mark.parametrize("door", sorted(DOORS))
def test_every_door_emits_the_batch_metrics_and_one_summary_line(door: str, app: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    invoke, events = DOORS[door]
    with caplog.at_level(logging.INFO, logger="twinbridge.events"):
        invoke()
    assert METRICS.total(BATCHES, door=door) == 1
    assert METRICS.total(EVENTS, door=door) == events
    summaries = [orjson.loads(r.getMessage()) for r in caplog.records
                 if r.name == "twinbridge.events" and '"twinbridge.batch"' in r.getMessage()]
    assert [(s["door"], s["events"]) for s in summaries] == [(door, events)]


def test_the_egress_router_counts_what_its_sinks_accepted(app: Path) -> None:
    _route_eventhub()
    assert METRICS.total(EGRESS_SENT, sink="local") == 2
    assert len((app / "egress.jsonl").read_bytes().splitlines()) == 2
