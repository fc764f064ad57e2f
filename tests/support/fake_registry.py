"""A fake IoT Hub registry query endpoint for ``responses``: the real IoTHubRegistryManager talks HTTP to it.

``POST /devices/query`` with ``{"query": ...}``: ``SELECT * FROM devices`` pages by ``x-ms-max-item-count`` with an
opaque ``x-ms-continuation`` token; ``SELECT deviceId FROM devices WHERE deviceId IN ['a', 'b']`` answers the ids
that exist. ``fail_next`` answers the next queries with a status (429, 503, ...).
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson
import responses

HOST = "fakehub.azure-devices.net"
CONNECTION_STRING = (f"HostName={HOST};SharedAccessKeyName=iothubowner;"
                     f"SharedAccessKey={base64.b64encode(b'not-a-real-key-0123456789abcdef').decode()}")
_JSON = {"Content-Type": "application/json; charset=utf-8"}
_IN = re.compile(r"WHERE deviceId IN \[(.*)\]$")


class FakeRegistry:
    def __init__(self, mock: responses.RequestsMock) -> None:
        self.devices: dict[str, dict[str, Any]] = {}
        self.queries: list[tuple[str, str | None, str | None]] = []  # (query, continuation, max item count)
        self.failures: list[int] = []
        mock.add_callback("POST", f"https://{HOST}/devices/query", callback=self._handle)

    def add(self, device_id: str, state: str = "Connected", version: int = 3, model_id: str = "",
            **extra: Any) -> None:
        self.devices[device_id] = {"deviceId": device_id, "etag": "AAAAAAAAAAE=", "deviceEtag": "NjY5",
                                   "version": version,
                                   "status": "enabled", "connectionState": state, "modelId": model_id,
                                   "lastActivityTime": "2026-11-23T11:59:00.0000000Z", "authenticationType": "sas",
                                   "properties": {"desired": {"$version": 1}, "reported": {"$version": 1}}, **extra}

    def fail_next(self, status: int, times: int = 1) -> None:
        self.failures.extend([status] * times)

    def _handle(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        assert request.headers["Authorization"].startswith("SharedAccessSignature sr=")
        query = orjson.loads(request.body)["query"]
        token, size = request.headers.get("x-ms-continuation"), request.headers.get("x-ms-max-item-count")
        self.queries.append((query, token, size))
        if self.failures:
            status = self.failures.pop(0)
            return status, dict(_JSON), orjson.dumps({"Message": "ErrorCode:Throttled"})
        match = _IN.search(query)
        if match:
            wanted = [part.strip()[1:-1].replace("''", "'") for part in match.group(1).split(",") if part.strip()]
            rows = [{"deviceId": d} for d in wanted if d in self.devices]
            return 200, {**_JSON, "x-ms-item-type": "Twin", "x-ms-continuation": ""}, orjson.dumps(rows)
        assert query == "SELECT * FROM devices", query
        ordered = [self.devices[k] for k in sorted(self.devices)]
        start = int(token) if token else 0
        end = start + int(size) if size else len(ordered)
        headers = {**_JSON, "x-ms-item-type": "Twin", "x-ms-continuation": str(end) if end < len(ordered) else ""}
        return 200, headers, orjson.dumps(ordered[start:end])
