"""End to end through ``python -m twinbridge host``: the same independent stream of events POSTed over HTTP to the
Event Grid trigger's URL (arrays of ``trigger_array`` events, as an Event Grid subscription with that
maxEventsPerBatch delivers) and to the webhook door (arrays up to 1 MB), each door on a host process of its own
(embedded twin graph behind the write pacer, memory state). Events per second from the first POST to the last answer.
"""

from __future__ import annotations

import http.client
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shared.settings.doors import EVENT_GRID_MAX_BYTES
from shared.settings.environment import APP_ROOT
from twinbridge.bench.workload import TOPIC, Workload
from twinbridge.localhost.child import HostChild

TRIGGER_PATH = "/runtime/webhooks/eventgrid?functionName=ingest_iothub_events"
WEBHOOK_PATH = "/api/eventgrid"


def _settings_file(directory: Path, pacer: str) -> Path:
    values = {
        "FUNCTIONS_WORKER_RUNTIME": "python", "TWINBRIDGE_ALLOWED_TOPICS": TOPIC,
        "TWINBRIDGE_MODELS_DIR": str(APP_ROOT / "models"), "TWINBRIDGE_QUARANTINE": "memory",
        "TWINBRIDGE_STATE_STORE": "memory", "TWINBRIDGE_WRITE_PACER": pacer,
        "AzureWebJobs.route_twin_changes_eventhub.Disabled": "true",
    }
    path = directory / "local.settings.json"
    path.write_text(json.dumps({"IsEncrypted": False, "Values": values}))
    return path


class Host:
    """One host child for one door's run: the bench's settings only (none inherited), its log discarded."""

    def __init__(self, directory: Path, pacer: str) -> None:
        self.child = HostChild(_settings_file(directory, pacer), directory / "outputs", grace=30)
        self.child.wait_ready(60)
        self.port = self.child.port

    def post(self, path: str, body: bytes) -> int:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            connection.request("POST", path, body, {"aeg-event-type": "Notification",
                                                    "content-type": "application/json"})
            response = connection.getresponse()
            response.read()
            return response.status
        finally:
            connection.close()

    def twin_writes(self) -> int:
        """Twin writes the host's pipeline made (its loopback-only stats endpoint)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", "/admin/twinbridge/stats")
            return int(json.loads(connection.getresponse().read())["twin_writes"])
        finally:
            connection.close()

    def stop(self) -> None:
        self.child.stop()


def _arrays(events: list[bytes], max_events: int, max_bytes: int) -> list[bytes]:
    bodies: list[bytes] = []
    current: list[bytes] = []
    size = 2
    for raw in events:
        if current and (len(current) == max_events or size + len(raw) + 1 > max_bytes):
            bodies.append(b"[" + b",".join(current) + b"]")
            current, size = [], 2
        current.append(raw)
        size += len(raw) + 1
    if current:
        bodies.append(b"[" + b",".join(current) + b"]")
    return bodies


def run_host_e2e(events: int, devices: int, seed: int, trigger_array: int = 64, senders: int = 4,
                 pacer: str = "on") -> dict[str, Any]:
    """``pacer``: TWINBRIDGE_WRITE_PACER for the hosts ("on": as with ADT; "off": the embedded graph's default)."""
    stream = list(Workload(devices, seed).stream(events))
    plans = {"trigger": (TRIGGER_PATH, _arrays(stream, trigger_array, EVENT_GRID_MAX_BYTES)),
             "webhook": (WEBHOOK_PATH, _arrays(stream, 5000, EVENT_GRID_MAX_BYTES))}
    tag = "host_e2e" if pacer == "on" else f"host_e2e_pacer_{pacer}"
    figures: dict[str, Any] = {"host_e2e_events": events, "host_e2e_devices": devices,
                               "host_e2e_trigger_array": trigger_array, "host_e2e_senders": senders}
    for door, (path, bodies) in plans.items():
        with tempfile.TemporaryDirectory() as directory:
            host = Host(Path(directory), pacer)
            try:
                start = time.perf_counter()
                with ThreadPoolExecutor(senders) as pool:
                    statuses = list(pool.map(lambda body, h=host, p=path: h.post(p, body), bodies))
                seconds = time.perf_counter() - start
                writes = host.twin_writes()
            finally:
                host.stop()
        figures[f"{tag}_{door}_events_per_s"] = round(events / seconds)
        figures[f"{tag}_{door}_deliveries"] = len(bodies)
        figures[f"{tag}_{door}_writes_per_event"] = round(writes / events, 4)
        figures[f"{tag}_{door}_statuses"] = {str(s): statuses.count(s) for s in sorted(set(statuses))}
    figures[f"{tag}_trigger_vs_webhook"] = round(
        figures[f"{tag}_trigger_events_per_s"] / figures[f"{tag}_webhook_events_per_s"], 2)
    return figures
