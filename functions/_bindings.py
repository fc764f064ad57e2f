"""What the doors share: binding objects → the plain data the app takes (no decisions here, no app state)."""

from __future__ import annotations

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
