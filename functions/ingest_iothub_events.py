"""Door: IoT Hub events delivered by an Event Grid subscription (Event Grid or CloudEvents 1.0 schema).

Thin glue: the binding's object → the plain event dict in its own schema → the pipeline. Permanent failures are
quarantined by the pipeline and the invocation succeeds; a transient failure raises so Event Grid redelivers.
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from functions.runtime import current_app
from shared.observability import log_batch

bp = func.Blueprint()


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


@bp.function_name("ingest_iothub_events")
@bp.event_grid_trigger(arg_name="event")
def ingest_iothub_events(event: func.EventGridEvent) -> None:
    events = [to_plain_event(event)]
    report = current_app().pipeline.process(events)
    log_batch(report, door="ingest_iothub_events", events=events)
    report.raise_if_transient()
