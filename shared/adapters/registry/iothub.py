"""The IoT Hub registry through ``azure-iot-hub`` (IoTHubRegistryManager), behind the ``Registry`` protocol.

Pages come from the registry query ``SELECT * FROM devices`` with its continuation token (``x-ms-continuation``)
and page size (``x-ms-max-item-count``). The rows are read from the SDK's raw response — the same call
``query_iot_hub`` makes — because the SDK's ``Twin`` model drops ``modelId`` (the Plug and Play model id).
Throttling (429), server errors and connection failures become ``TransientError``; a 401/403 is a configuration
problem and is raised as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from azure.iot.hub import IoTHubRegistryManager
from azure.iot.hub.models import QuerySpecification
from msrest.exceptions import ClientRequestError, HttpOperationError

from shared.errors import Code, TransientError
from shared.ingest.timeparse import parse_ticks
from shared.reconcile.decisions import RegistryDevice, RegistryPage

DEVICES_QUERY = "SELECT * FROM devices"


def _ticks(value: Any) -> int | None:
    if not isinstance(value, str) or value.startswith("0001-01-01"):
        return None
    try:
        return parse_ticks(value)
    except ValueError:
        return None


def device_from_row(row: dict[str, Any]) -> RegistryDevice:
    version = row.get("version")
    model = row.get("modelId")
    return RegistryDevice(
        device_id=str(row["deviceId"]),
        connection_state=row.get("connectionState"),
        status=row.get("status"),
        version=version if isinstance(version, int) and not isinstance(version, bool) else None,
        model_id=model if isinstance(model, str) and model else None,
        state_since_ticks=_ticks(row.get("connectionStateUpdatedTime")),
    )


def _quote(device_id: str) -> str:
    return "'" + device_id.replace("'", "''") + "'"


class IotHubRegistry:
    def __init__(self, manager: IoTHubRegistryManager) -> None:
        self.manager = manager

    @classmethod
    def from_settings(cls, host_name: str | None, connection_string: str | None) -> IotHubRegistry:
        if connection_string:
            return cls(IoTHubRegistryManager.from_connection_string(connection_string))
        if not host_name:
            raise ValueError("set IOTHUB_HOST_NAME (managed identity) or IOTHUB_CONNECTION_STRING")
        from azure.identity import DefaultAzureCredential

        return cls(IoTHubRegistryManager.from_token_credential(host_name, DefaultAzureCredential()))

    def _query(self, query: str, continuation: str | None, size: int | None) -> tuple[list[dict[str, Any]], str | None]:
        try:
            raw = self.manager.protocol.query.get_twins(QuerySpecification(query=query), continuation, size,
                                                       None, True)
        except HttpOperationError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status == 429 or status >= 500:
                raise TransientError(Code.REGISTRY_UNAVAILABLE, f"IoT Hub registry query failed ({status})") from exc
            raise
        except ClientRequestError as exc:
            raise TransientError(Code.REGISTRY_UNAVAILABLE, f"cannot reach the IoT Hub registry: {exc}") from exc
        rows = raw.response.json()
        token = raw.response.headers.get("x-ms-continuation") or None
        return [r for r in rows if isinstance(r, dict) and "deviceId" in r], token

    def page(self, continuation: str | None, size: int) -> RegistryPage:
        rows, token = self._query(DEVICES_QUERY, continuation, size)
        return RegistryPage([device_from_row(r) for r in rows], token)

    def existing(self, device_ids: Sequence[str]) -> set[str]:
        if not device_ids:
            return set()
        query = f"SELECT deviceId FROM devices WHERE deviceId IN [{', '.join(_quote(d) for d in device_ids)}]"
        found: set[str] = set()
        token: str | None = None
        while True:
            rows, token = self._query(query, token, None)
            found.update(str(r["deviceId"]) for r in rows)
            if not token:
                return found
