"""Builders for Azure Digital Twins notifications in the shapes ADT documents (docs/azure-behaviour.md §1.3)."""

from __future__ import annotations

from typing import Any

SOURCE = "contoso-adt.api.weu.digitaltwins.azure.net"
EG_TOPIC = ("/subscriptions/0a1b2c3d-0000-4000-8000-000000000001/resourceGroups/egress-rg/providers"
            "/Microsoft.EventGrid/topics/adt-changes")
TRACEPARENT = "00-7d8f1c2b3a4e5f60718293a4b5c6d7e8-0123456789abcdef-01"
ROOM = "dtmi:contoso:Room;1"
FLOOR = "dtmi:contoso:Floor;1"


def _time(second: float) -> str:
    return f"2026-11-23T10:{int(second) // 60:02d}:{int(second) % 60:02d}.{round((second % 1) * 1e7):07d}Z"


def twin_update(twin: str, patch: list[dict[str, Any]], *, model: str = ROOM, nid: str | None = None,
                second: float = 0) -> dict[str, Any]:
    """CloudEvents 1.0 (Event Grid CloudEvents schema / structured form)."""
    return {"specversion": "1.0", "id": nid or f"upd-{twin}-{second}", "source": SOURCE,
            "type": "Microsoft.DigitalTwins.Twin.Update", "subject": twin, "time": _time(second),
            "datacontenttype": "application/json", "traceparent": TRACEPARENT,
            "data": {"modelId": model, "patch": patch}}


def replace(path: str, value: Any) -> dict[str, Any]:
    return {"value": value, "path": path, "op": "replace"}


def twin_lifecycle(twin: str, *, created: bool = True, model: str = ROOM, nid: str | None = None,
                   props: dict[str, Any] | None = None) -> dict[str, Any]:
    kind = "Create" if created else "Delete"
    data = {"$dtId": twin, "$etag": 'W/"a1b2"', **(props or {}),
            "$metadata": {"$model": model, **{k: {"lastUpdateTime": _time(0)} for k in (props or {})}}}
    return {"specversion": "1.0", "id": nid or f"{kind}-{twin}", "source": SOURCE,
            "type": f"Microsoft.DigitalTwins.Twin.{kind}", "subject": twin, "time": _time(0),
            "datacontenttype": "application/json", "traceparent": TRACEPARENT, "data": data}


def relationship(source: str, rel_id: str, target: str, name: str = "contains", *, created: bool = True
                 ) -> dict[str, Any]:
    kind = "Create" if created else "Delete"
    return {"specversion": "1.0", "id": f"rel-{kind}-{rel_id}", "source": SOURCE,
            "type": f"Microsoft.DigitalTwins.Relationship.{kind}", "subject": f"{source}/relationships/{rel_id}",
            "time": _time(0), "datacontenttype": "application/json",
            "data": {"$relationshipId": rel_id, "$etag": 'W/"r1"', "$sourceId": source, "$targetId": target,
                     "$relationshipName": name}}


def telemetry(twin: str, body: dict[str, Any], *, nid: str = "msg-1", component: str = "") -> dict[str, Any]:
    """As Learn's CloudEvents example shows it: no ``time``; ``subject`` only for a component; the content type
    ``application/json-patch+json; charset=utf-8``; ``dataschema`` the model id."""
    event = {"specversion": "1.0", "id": nid, "source": f"{SOURCE}/digitaltwins/{twin}",
             "type": "microsoft.iot.telemetry", "datacontenttype": "application/json-patch+json; charset=utf-8",
             "dataschema": ROOM, "traceparent": TRACEPARENT, "data": body}
    if component:
        event["subject"] = component
    return event


def to_eventgrid(event: dict[str, Any]) -> dict[str, Any]:
    """The same notification through an Event Grid topic in Event Grid schema: data nested twice; telemetry names
    its twin in ``subject`` and has the placeholder ``eventTime`` 0001-01-01T00:00:00Z (Learn's example)."""
    inner = {"data": event["data"], "contenttype": event.get("datacontenttype", "application/json")}
    if "dataschema" in event:
        inner["dataschema"] = event["dataschema"]
    if "traceparent" in event:
        inner["traceparent"] = event["traceparent"]
    telemetry = event["type"] == "microsoft.iot.telemetry"
    subject = event["source"].split("/digitaltwins/", 1)[1] if telemetry else event.get("subject", "")
    return {"id": event["id"], "subject": subject, "data": inner, "eventType": event["type"],
            "dataVersion": "1.0", "metadataVersion": "1", "eventTime": event.get("time", "0001-01-01T00:00:00Z"),
            "topic": EG_TOPIC}


def to_amqp(event: dict[str, Any], prefix: str = "cloudEvents:") -> tuple[dict[str, Any], bytes]:
    """The CloudEvents AMQP binding ADT uses for Event Hubs/Service Bus: attributes → application properties."""
    import orjson

    props = {f"{prefix}{k}": v for k, v in event.items() if k not in ("data", "datacontenttype")}
    return props, orjson.dumps(event["data"])
