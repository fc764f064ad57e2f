"""The naive function the speed-up is measured against, written as the official ADT ingestion tutorial does it.

One event at a time, synchronously: parse it, take the device id, and send one PATCH to that device's twin with
the event's values — no batching, no coalescing, no concurrency. It is given the benefit of the doubt everywhere:
no GET before the PATCH (the tutorial does none), no freshness bookkeeping, no state store. A twin that does not
exist yet costs one extra call (create), as any working version of the tutorial needs.
"""

from __future__ import annotations

import base64
import contextlib
from typing import Any

import orjson

from shared.errors import TwinConflict, TwinMissing
from shared.ingest.model_types import ModelTypes, property_type
from shared.ports import TwinStore

_TELEMETRY = "Microsoft.Devices.DeviceTelemetry"
_CONNECTED = "Microsoft.Devices.DeviceConnected"
_DISCONNECTED = "Microsoft.Devices.DeviceDisconnected"
_CREATED = "Microsoft.Devices.DeviceCreated"
_DELETED = "Microsoft.Devices.DeviceDeleted"


def naive_handle(raw: bytes, twins: TwinStore, catalog: ModelTypes, model_id: str) -> int:
    """Handle one event the naive way; returns the number of ADT calls made."""
    event = orjson.loads(raw)
    event_type = event.get("eventType")
    data = event.get("data") or {}
    device = str(event.get("subject", "")).removeprefix("devices/")
    if event_type == _CREATED:
        with contextlib.suppress(TwinConflict):
            twins.create_twin(device, {"$metadata": {"$model": model_id}})
        return 1
    if event_type == _DELETED:
        twins.delete_twin(device)
        return 1
    if event_type in (_CONNECTED, _DISCONNECTED):
        values: dict[str, Any] = {"connectionState": "Connected" if event_type == _CONNECTED else "Disconnected"}
    elif event_type == _TELEMETRY:
        device = data["systemProperties"]["iothub-connection-device-id"]
        body = data["body"]
        if isinstance(body, str):
            body = orjson.loads(base64.b64decode(body))
        values = {k: v for k, v in body.items() if property_type(catalog, model_id, (k,)) is not None}
    else:
        return 0
    patch = [{"op": "add", "path": f"/{name}", "value": value} for name, value in values.items()]
    try:
        twins.patch_twin(device, patch, "*")
        return 1
    except TwinMissing:
        twins.create_twin(device, {"$metadata": {"$model": model_id}, **values})
        return 2
