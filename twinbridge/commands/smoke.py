"""``python -m twinbridge smoke`` — post-deploy check: send a known event to the deployed function, see the twin.

Sends a ``DeviceCreated`` then a ``DeviceConnected`` event (Event Grid schema, topic = the hub's resource id) for a
fresh device id straight to the function's Event Grid endpoint — ``/runtime/webhooks/eventgrid?functionName=
ingest_iothub_events`` with the ``eventgrid_extension`` system key — then polls Azure Digital Twins (managed
identity / ``az login`` through DefaultAzureCredential) until the twin exists and shows ``Connected``.

    EVENTGRID_SYSTEM_KEY=$(az functionapp keys list -g RG -n APP --query systemKeys.eventgrid_extension -o tsv) \\
    python -m twinbridge smoke --function-url https://APP.azurewebsites.net --adt-url https://ADT_HOST \\
        --topic "$(az iot hub show -n HUB --query id -o tsv)" --cleanup

The key is read from the environment, never from the command line (shell history, process list).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from azure.core import PipelineClient
from azure.core.rest import HttpRequest

from shared.errors import TransientError
from shared.ports import TwinStore

FUNCTION = "ingest_iothub_events"
KEY_VARIABLE = "EVENTGRID_SYSTEM_KEY"


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("smoke", help="post-deploy smoke test: send a known event, wait for its twin",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--function-url", required=True, help="https://<app>.azurewebsites.net")
    parser.add_argument("--adt-url", required=True, help="https://<instance>.api.<region>.digitaltwins.azure.net")
    parser.add_argument("--topic", required=True, help="the IoT Hub's resource id (TWINBRIDGE_ALLOWED_TOPICS)")
    parser.add_argument("--device", help="device id to use (default: twinbridge-smoke-<random>)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the twin (default 60)")
    parser.add_argument("--poll-interval", type=float, default=2.0, help=argparse.SUPPRESS)
    parser.add_argument("--cleanup", action="store_true", help="delete the twin afterwards")
    parser.set_defaults(handler=run)


def smoke_events(topic: str, device: str, now: datetime | None = None) -> list[dict[str, Any]]:
    """DeviceCreated then DeviceConnected for ``device``, shaped like IoT Hub's own (docs/azure-behaviour.md §1)."""
    when = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
    hub = topic.rstrip("/").rsplit("/", 1)[-1].lower()
    twin = {"deviceId": device, "etag": "AAAAAAAAAAE=", "deviceEtag": "null", "status": "enabled",
            "statusUpdateTime": "0001-01-01T00:00:00", "connectionState": "Disconnected",
            "lastActivityTime": "0001-01-01T00:00:00", "cloudToDeviceMessageCount": 0, "authenticationType": "sas",
            "x509Thumbprint": {"primaryThumbprint": None, "secondaryThumbprint": None}, "version": 2,
            "properties": {"desired": {"$metadata": {"$lastUpdated": when}, "$version": 1},
                           "reported": {"$metadata": {"$lastUpdated": when}, "$version": 1}}}
    common = {"topic": topic, "subject": f"devices/{device}", "eventTime": when, "dataVersion": "1",
              "metadataVersion": "1"}
    run_id = uuid.uuid4().hex
    return [
        {**common, "id": f"smoke-created-{run_id}", "eventType": "Microsoft.Devices.DeviceCreated",
         "data": {"twin": twin, "hubName": hub, "deviceId": device}},
        {**common, "id": f"smoke-connected-{run_id}", "eventType": "Microsoft.Devices.DeviceConnected",
         "data": {"deviceConnectionStateEventInfo": {"sequenceNumber": f"{1:064X}"}, "hubName": hub,
                  "deviceId": device, "moduleId": ""}},
    ]


def send(client: PipelineClient[Any, Any], base_url: str, key: str, event: dict[str, Any]) -> int:
    # azure-core's logging policy redacts query parameters such as ``code``: the key never reaches a log.
    request = HttpRequest("POST", f"{base_url}/runtime/webhooks/eventgrid",
                          params={"functionName": FUNCTION, "code": key},
                          headers={"aeg-event-type": "Notification", "Content-Type": "application/json"},
                          content=orjson.dumps([event]))
    return int(client.send_request(request).status_code)


def wait_for_twin(twins: TwinStore, twin_id: str, timeout: float, interval: float) -> dict[str, Any] | None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            twin = twins.get_twin(twin_id)
        except TransientError:
            twin = None
        if twin is not None and twin.get("connectionState") == "Connected":
            return twin
        if time.monotonic() >= deadline:
            return twin
        time.sleep(interval)


def run(args: argparse.Namespace, twins: TwinStore | None = None) -> int:
    key = os.environ.get(KEY_VARIABLE, "").strip()
    if not key:
        print(f"error: set {KEY_VARIABLE} to the function app's eventgrid_extension system key", file=sys.stderr)
        return 2
    device = args.device or f"twinbridge-smoke-{uuid.uuid4().hex[:8]}"
    if twins is None:
        from shared.adapters.twins.adt import AdtTwinStore

        twins = AdtTwinStore.from_url(args.adt_url)
    started = time.monotonic()
    base_url = args.function_url.rstrip("/")
    client: PipelineClient[Any, Any]
    with PipelineClient(base_url) as client:
        for event in smoke_events(args.topic, device):
            status = send(client, base_url, key, event)
            print(f"sent {event['eventType']} {event['id']} -> HTTP {status}")
            if status not in (200, 202):
                print(f"error: the function answered {status} (401/403: wrong key; 404: function not deployed)",
                      file=sys.stderr)
                return 1
    twin = wait_for_twin(twins, device, args.timeout, args.poll_interval)
    elapsed = time.monotonic() - started
    if twin is None or twin.get("connectionState") != "Connected":
        state = "missing" if twin is None else f"connectionState={twin.get('connectionState')!r}"
        print(f"FAIL twin {device} {state} after {elapsed:.1f} s (check the app's logs: quarantined events carry "
              "code and path)", file=sys.stderr)
        return 1
    print(f"OK twin {device} Connected ({twin.get('$metadata', {}).get('$model')}) after {elapsed:.1f} s")
    if args.cleanup:
        twins.delete_twin(device)
        print(f"deleted twin {device}")
    return 0
