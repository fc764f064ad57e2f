"""What the door tests share: twins as compared, events re-serialised by the Azure SDKs' own models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import azure.functions as func
import orjson
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent
from azure.eventgrid._legacy._helpers import _cloud_event_to_generated


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
