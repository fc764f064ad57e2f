"""What the doors share: binding objects → the plain data the app takes, and the one Event Hubs batch door
(trigger, retry policy) both Event Hubs functions declare; no decisions here, no app state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import azure.functions as func


def at(items: Any, index: int) -> dict[str, Any]:
    """Item ``index`` of a trigger metadata array (``PropertiesArray``, ``SystemPropertiesArray``), or {}."""
    if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
        return dict(items[index])
    return {}


def to_plain_event(event: func.EventGridEvent | func.CloudEvent) -> dict[str, Any]:
    """The event as it was on the wire (either schema), rebuilt from the binding's typed object."""
    if isinstance(event, func.CloudEvent):
        plain: dict[str, Any] = {"specversion": event.specversion, "id": event.id, "source": event.source,
                                 "type": event.type, "subject": event.subject, "data": event.get_json()}
        if event.time is not None:
            plain["time"] = event.time if isinstance(event.time, str) else event.time.isoformat()
        plain.update(event.extension_attrs or {})
        return plain
    event_time = event.event_time
    return {
        "id": event.id, "topic": event.topic, "subject": event.subject, "eventType": event.event_type,
        "eventTime": event_time.isoformat() if event_time is not None else None,
        "data": event.get_json(), "dataVersion": event.data_version, "metadataVersion": "1",
    }


def eventhub_batch_door(bp: func.Blueprint, name: str, *, connection: str, event_hub_name: str,
                        consumer_group: str) -> Callable[[Callable[..., None]], Any]:
    """The binding every Event Hubs door declares (ingest_iothub_stream, route_twin_changes_eventhub): batches
    (cardinality many) of ``events``, and a retry policy without limit.

    * Only transient failures raise (permanent ones are quarantined), so retrying without limit keeps a partition
      in order — it waits while a dependency is unavailable instead of skipping past events. Back-off 5 s … 5 min.
    * dataType binary: without it the host fails to bind a non-JSON body in a batch and replays it forever; binary
      hands every body over as bytes (tests/runtime sends one that is not UTF-8).
    * The door's parameter must be annotated ``typing.List[func.EventHubEvent]``, not ``list[...]``: the Functions
      worker/runtime accepts only typing.List[...] for a batch trigger (list[X] is not a type to its check, and the
      whole app then indexes 0 functions). tests/runtime proves it.
    """
    trigger = bp.event_hub_message_trigger(arg_name="events", connection=connection, event_hub_name=event_hub_name,
                                           cardinality=func.Cardinality.MANY, data_type=func.DataType.BINARY,
                                           consumer_group=consumer_group)
    retry = bp.retry(strategy="exponential_backoff", max_retry_count="-1", minimum_interval="00:00:05",
                     maximum_interval="00:05:00")

    def declare(door: Callable[..., None]) -> Any:
        # The order the stacked decorators applied (bottom-up): trigger, retry, then the function's name.
        return bp.function_name(name)(retry(trigger(door)))

    return declare
