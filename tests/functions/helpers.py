"""Apps for the door tests, assembled from shared.wiring's pieces over the embedded twin graph."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import azure.functions as func
import orjson
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent
from azure.eventgrid._legacy._helpers import _cloud_event_to_generated

from shared.adapters.checkpoints.memory import MemoryCheckpoints
from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.twins.embedded_graph import EmbeddedTwinGraph
from shared.ports import TwinStore
from shared.settings.app_config import AppConfig
from shared.settings.doors import DoorSettings
from shared.settings.environment import Settings
from shared.twins.pipeline import Pipeline
from shared.wiring import App
from tests.support import event_factory as factory
from tests.support.rig import CATALOG


def make_app(twins: TwinStore | None = None, config: dict[str, Any] | None = None,
             doors: DoorSettings | None = None) -> App:
    settings = Settings(doors=doors or DoorSettings())
    app_config = AppConfig.from_data({"topics": [factory.TOPIC], **(config or {})})
    graph = twins if twins is not None else EmbeddedTwinGraph(CATALOG)
    state, quarantine = MemoryStateStore(), MemoryQuarantine()
    # One twin at a time: deterministic write counts and fault injection order.
    pipeline = Pipeline(app_config, graph, state, quarantine, catalog=CATALOG, max_concurrency=1)
    return App(settings, app_config, CATALOG, graph, state, quarantine, pipeline, MemoryCheckpoints())


def user_twins(twins: Any) -> dict[str, dict[str, Any]]:
    return {t["$dtId"]: {"$model": t["$metadata"]["$model"], **{k: v for k, v in t.items() if not k.startswith("$")}}
            for t in twins.list_twins()}


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text[:26].rstrip("Z") + "+00:00")


def as_eventgrid_wire(event: dict[str, Any]) -> dict[str, Any]:
    """The factory event re-serialised by azure-eventgrid's own model (what a publisher puts on the wire)."""
    model = EventGridEvent(subject=event["subject"], event_type=event["eventType"], data=event["data"],
                           data_version=event["dataVersion"], topic=event["topic"], id=event["id"],
                           event_time=_when(event["eventTime"]))
    wire: dict[str, Any] = model.serialize()
    return wire


def as_cloudevent_wire(event: dict[str, Any]) -> dict[str, Any]:
    model = CloudEvent(source=event["topic"], type=event["eventType"], data=event["data"], subject=event["subject"],
                       id=event["id"], time=_when(event["eventTime"]))
    wire: dict[str, Any] = _cloud_event_to_generated(model).serialize()
    return wire


def post(body: bytes, headers: dict[str, str] | None = None,
         content_type: str = "application/json") -> func.HttpRequest:
    return func.HttpRequest("POST", "https://app.azurewebsites.net/api/eventgrid?code=k",
                            headers={"Content-Type": content_type, "aeg-event-type": "Notification",
                                     "aeg-subscription-name": "TWINBRIDGE-SUB", **(headers or {})},
                            body=body)


def body_of(response: func.HttpResponse) -> Any:
    raw = response.get_body()
    return orjson.loads(raw) if raw else None
