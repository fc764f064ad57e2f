"""The engine's changes as Azure Digital Twins emits them to event routes, in each wire form ADT uses.

Source: Learn, *Event notifications* (https://learn.microsoft.com/azure/digital-twins/concepts-event-notifications),
whose examples show every notification type in the three forms an endpoint receives:

* **CloudEvents 1.0** (an Event Grid topic with the CloudEvents schema): ``specversion``, ``id``, ``type``,
  ``source``, ``subject``, ``time``, ``datacontenttype``, ``traceparent``, ``data``.
  - Twin/relationship notifications: ``source`` is the instance's host name (``<name>.api.<region>…``), ``id`` a
    fresh UUID (``source`` + ``id`` is unique per event), ``subject`` the twin id or
    ``<twin id>/relationships/<relationship id>``, ``datacontenttype`` ``application/json``.
  - Telemetry (``microsoft.iot.telemetry``, lower case): ``id`` is the caller's ``Message-Id``, ``source`` is
    ``<host>/digitaltwins/<twin id>``, ``subject`` only for component telemetry (the component name),
    ``dataschema`` the model id of the twin or component, **no ``time``**, and ``datacontenttype``
    ``application/json-patch+json; charset=utf-8`` (what the examples show, though the table says
    ``application/json``).
* **Event Grid schema**: ``data`` nests the body once more — ``{"data": body, "contenttype": …, "traceparent": …}``
  (plus ``dataschema`` for telemetry); ``eventType``, ``eventTime``, ``dataVersion`` "1.0", ``metadataVersion``
  "1", ``topic`` (the Event Grid topic, not the instance), ``subject`` the twin id — for telemetry too, where
  ``eventTime`` is ``0001-01-01T00:00:00Z`` in the example.
* **AMQP** (Event Hubs, Service Bus): the attributes as application properties named ``cloudEvents:<attribute>``
  and the body in the data section. The examples list no ``datacontenttype`` property.

Bodies: Twin.Create = the twin as GET returns it; Twin.Update = ``{"modelId", "patch"}``; Twin.Delete = the twin
before deletion; Relationship.Create/Delete = the relationship as GET returns it; Relationship.Update =
``{"modelId", "patch"}``; telemetry = the message unchanged. The engine builds those bodies
(``graph.Notification``); this module only dresses them.

``traceparent``: every example carries one, and the examples of one scenario share the trace id while each
notification has its own parent id. The emulator keeps the trace id (and flags) of the request that caused the
change and gives each notification a new parent id; a request without ``traceparent`` starts a new trace.
"""

from __future__ import annotations

import re
import secrets
import uuid
from datetime import datetime
from typing import Any, Final

import orjson

from shared.adapters.twins.embedded.graph import Notification

TELEMETRY: Final = "microsoft.iot.telemetry"
JSON: Final = "application/json"
TELEMETRY_CONTENT_TYPE: Final = "application/json-patch+json; charset=utf-8"
NO_EVENT_TIME: Final = "0001-01-01T00:00:00Z"  # Event Grid schema telemetry (Learn's example)
DEFAULT_TOPIC: Final = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers"
                        "/Microsoft.EventGrid/topics/adt-emulator")
AMQP_PREFIX: Final = "cloudEvents:"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def traceparent_for(request_traceparent: str | None) -> str:
    """A W3C traceparent for one notification: the request's trace id and flags with a new parent id."""
    found = _TRACEPARENT.match((request_traceparent or "").strip().lower())
    if found and found.group(2) != "0" * 32:
        return f"00-{found.group(2)}-{secrets.token_hex(8)}-{found.group(4)}"
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


def twin_of(event: dict[str, Any]) -> str:
    """The twin a CloudEvents notification is about (what orders deliveries): telemetry names it in ``source``,
    relationships in the part of ``subject`` before ``/relationships/``."""
    if event["type"] == TELEMETRY:
        return str(event["source"]).rsplit("/digitaltwins/", 1)[-1]
    return str(event.get("subject", "")).split("/relationships/", 1)[0]


def to_cloudevent(change: Notification, host: str) -> dict[str, Any]:
    """The structured CloudEvents form of one engine change, as ADT emits it (``host``: ``name.api.region…`` or,
    for the emulator, ``127.0.0.1:PORT``)."""
    if change.type == TELEMETRY:
        event: dict[str, Any] = {"specversion": "1.0", "id": change.message_id, "type": TELEMETRY,
                                 "source": f"{host}/digitaltwins/{change.twin_id}", "data": change.data}
        if change.model_id:
            event["dataschema"] = change.model_id
        if change.component:
            event["subject"] = change.component
        event["datacontenttype"] = TELEMETRY_CONTENT_TYPE
    else:
        subject = change.twin_id if change.relationship_id is None \
            else f"{change.twin_id}/relationships/{change.relationship_id}"
        event = {"specversion": "1.0", "id": str(uuid.uuid4()), "type": change.type, "source": host,
                 "data": change.data, "subject": subject, "time": change.time, "datacontenttype": JSON}
    event["traceparent"] = traceparent_for(change.traceparent)
    return event


def to_eventgrid(event: dict[str, Any], topic: str = DEFAULT_TOPIC) -> dict[str, Any]:
    """The same notification through an Event Grid topic in Event Grid schema."""
    inner: dict[str, Any] = {"data": event.get("data")}
    if "dataschema" in event:
        inner["dataschema"] = event["dataschema"]
    inner["contenttype"] = event.get("datacontenttype", JSON)
    if "traceparent" in event:
        inner["traceparent"] = event["traceparent"]
    telemetry = event["type"] == TELEMETRY
    return {"id": event["id"], "subject": twin_of(event) if telemetry else event.get("subject", ""),
            "data": inner, "eventType": event["type"], "dataVersion": "1.0", "metadataVersion": "1",
            "eventTime": event.get("time") or NO_EVENT_TIME, "topic": topic}


def to_amqp(event: dict[str, Any], *, typed_time: bool = False) -> tuple[dict[str, Any], bytes]:
    """The CloudEvents AMQP binding (Event Hubs, Service Bus): application properties and the data section.
    ``typed_time`` sends ``time`` as an AMQP timestamp (the binding maps the Timestamp type so) instead of text."""
    properties: dict[str, Any] = {}
    for name in ("id", "source", "specversion", "type", "time", "subject", "dataschema", "traceparent"):
        if name in event:
            value = event[name]
            if name == "time" and typed_time:
                value = datetime.fromisoformat(_seven_to_six(value))
            properties[AMQP_PREFIX + name] = value
    return properties, orjson.dumps(event.get("data"))


def _seven_to_six(text: str) -> str:
    """``…:52.9795363Z`` → ``…:52.979536+00:00``: datetime keeps microseconds."""
    head, _, rest = text.partition(".")
    if not rest:
        return text.replace("Z", "+00:00")
    digits = rest.rstrip("Z")
    return f"{head}.{digits[:6].ljust(6, '0')}+00:00"


def in_schema(event: dict[str, Any], schema: str, topic: str = DEFAULT_TOPIC) -> dict[str, Any]:
    """``eventgrid`` or ``cloudevents`` (the two JSON forms an Event Grid topic delivers)."""
    if schema == "eventgrid":
        return to_eventgrid(event, topic)
    if schema == "cloudevents":
        return event
    raise ValueError(f"unknown schema {schema!r} (eventgrid, cloudevents)")
