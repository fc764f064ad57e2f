"""Transforms: a notification matched by a route → the messages that route sends.

* ``passthrough``: the CloudEvent as received (structured form), one message.
* ``property-changes``: one record per changed property of a ``Twin.Update`` patch — what a time-series store
  wants. Other notification types produce no record (the route matched, nothing to send). Record:
  ``{twinId, modelId, property, op, value, sourceTime, notificationId}``, wrapped in a CloudEvent of type
  ``twinbridge.PropertyChange`` (subject = twin id, id = ``<notification id>:<n>``).

``sourceTime`` is the ``$metadata/<prop>/sourceTime`` written in the same patch when there is one (ADT exposes
it since API 2022-05-31), else the notification's ``time``. Operations on ``$``-prefixed paths (metadata) are not
property changes and produce no record.
"""

from __future__ import annotations

from typing import Any, Final

from shared.egress.config import CompiledRoute, Transform
from shared.egress.notifications import TWIN_UPDATE, Notification
from shared.egress.ports import Outgoing

PROPERTY_CHANGE_TYPE: Final = "twinbridge.PropertyChange"


def _segments(pointer: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]


def _pointer(segments: list[str]) -> str:
    return "/" + "/".join(s.replace("~", "~0").replace("/", "~1") for s in segments)


def source_times(patch: list[dict[str, Any]]) -> dict[str, str]:
    """Property pointer → sourceTime written in the same patch (``/$metadata/p/sourceTime``, ``/c/$metadata/p/…``)."""
    times: dict[str, str] = {}
    for op in patch:
        parts = _segments(str(op.get("path", "/")))
        if len(parts) >= 3 and parts[-3] == "$metadata" and parts[-1] == "sourceTime" and isinstance(op.get("value"),
                                                                                                       str):
            times[_pointer([*parts[:-3], parts[-2]])] = op["value"]
    return times


def property_changes(notification: Notification) -> list[dict[str, Any]]:
    """The per-property records of a Twin.Update (empty for any other type)."""
    if notification.type != TWIN_UPDATE:
        return []
    data = notification.data
    patch: list[dict[str, Any]] = data["patch"]
    times = source_times(patch)
    records = []
    for op in patch:
        path = str(op["path"])
        if any(part.startswith("$") for part in _segments(path)):
            continue
        records.append({
            "twinId": notification.twin_id,
            "modelId": data["modelId"],
            "property": path,
            "op": op["op"],
            "value": op.get("value"),
            "sourceTime": times.get(path, notification.time),
            "notificationId": notification.id,
        })
    return records


def outgoing(notification: Notification, route: CompiledRoute) -> list[Outgoing]:
    """The messages ``route`` sends for ``notification`` (it already matched the route's filter)."""
    base_key = f"{notification.forwarding_id}|{route.name}"
    twin = notification.twin_id
    if route.transform is Transform.PASSTHROUGH:
        return [Outgoing(base_key, route.name, notification.id, f"{notification.id}:{route.name}", twin,
                         dict(notification.cloudevent))]
    messages = []
    for n, record in enumerate(property_changes(notification)):
        event: dict[str, Any] = {"specversion": "1.0", "id": f"{notification.id}:{n}", "source": notification.source,
                                 "type": PROPERTY_CHANGE_TYPE, "subject": twin,
                                 "datacontenttype": "application/json", "data": record}
        if notification.time:
            event["time"] = notification.time
        messages.append(Outgoing(f"{base_key}#{n}", route.name, notification.id,
                                 f"{notification.id}:{route.name}:{n}", twin, event))
    return messages
