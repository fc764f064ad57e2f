"""Doors: Azure Digital Twins change notifications → egress routes (and propagation rules).

Two ways in, one router (``shared/egress``):

* ``route_twin_changes`` — an Event Grid subscription on the ADT endpoint's topic (Event Grid schema with the
  doubly nested ``data.data``, or CloudEvents 1.0). One invocation per event.
* ``route_twin_changes_eventhub`` — an ADT endpoint on Event Hubs: CloudEvents AMQP binding (attributes in the
  application properties, ``cloudEvents:`` or ``cloudEvents_`` prefix; body = data), batches (cardinality many).
  Settings: ``TWINBRIDGE_EGRESS_SOURCE`` (connection prefix: ``…__fullyQualifiedNamespace`` for managed identity),
  ``TWINBRIDGE_EGRESS_SOURCE_HUB``, ``TWINBRIDGE_EGRESS_SOURCE_CONSUMER_GROUP``.

Permanent failures are quarantined (``source="egress"``) and the invocation succeeds; a transient one raises after
the batch's successful sends were recorded, so the redelivery only sends what is missing.
"""

from __future__ import annotations

import logging
import typing
from typing import Any

import azure.functions as func

from functions._bindings import at, eventhub_batch_door, to_plain_event
from functions.runtime import current_app
from shared.observability import run_batch

log = logging.getLogger("twinbridge.egress")

bp = func.Blueprint()


def to_notification(event: func.EventGridEvent | func.CloudEvent) -> dict[str, Any]:
    """The notification as on the wire. CloudEvents keep ``datacontenttype``/``dataschema`` (route filters use
    ``dataschema`` for telemetry); attributes the binding left empty are dropped rather than sent as null."""
    plain = to_plain_event(event)
    if isinstance(event, func.CloudEvent):
        for name in ("datacontenttype", "dataschema"):
            value = getattr(event, name, None)
            if value is not None:
                plain[name] = value
    return {k: v for k, v in plain.items() if v is not None}


def to_amqp_messages(events: list[func.EventHubEvent]) -> list[tuple[dict[str, Any], bytes]]:
    """(application properties, body) per event; the properties come from the batch's PropertiesArray."""
    metadata: dict[str, Any] = dict(events[0].metadata or {}) if events else {}
    properties = metadata.get("PropertiesArray")
    return [(at(properties, i), event.get_body()) for i, event in enumerate(events)]


@bp.function_name("route_twin_changes")
@bp.event_grid_trigger(arg_name="event")
def route_twin_changes(event: func.EventGridEvent) -> None:
    report = run_batch("route_twin_changes", [to_notification(event)], current_app().egress.process)
    report.raise_if_transient()


@eventhub_batch_door(bp, "route_twin_changes_eventhub", connection="TWINBRIDGE_EGRESS_SOURCE",
                     event_hub_name="%TWINBRIDGE_EGRESS_SOURCE_HUB%",
                     consumer_group="%TWINBRIDGE_EGRESS_SOURCE_CONSUMER_GROUP%")
# typing.List, not list[...]: see functions/_bindings.py eventhub_batch_door.
def route_twin_changes_eventhub(events: typing.List[func.EventHubEvent]) -> None:  # noqa: UP006
    report = run_batch("route_twin_changes_eventhub", to_amqp_messages(events), current_app().egress.process_amqp)
    report.raise_if_transient()
