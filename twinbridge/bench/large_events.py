"""Peak memory of the Event Grid trigger door under large events (issue 15 §3).

The local host (``python -m twinbridge host``, the real FunctionApp) runs in a child process; N events of about
950 KB each are POSTed to its Event Grid webhook one per request, as Event Grid delivers to a Python trigger. Each
event is IoT Hub telemetry whose JSON body (a temperature and ~950 samples of 1 KB text) is over IoT Hub's 256 KB, so
the app quarantines it, whole, into a JSON Lines file in a temporary folder: the path that keeps the most of a large
event alive. The child's peak RSS is what the kernel reports for it at exit (``wait4``'s ``ru_maxrss``), and its
RSS is sampled from /proc while it runs. The garbage collector runs as the app sets it (``TWINBRIDGE_GC_GEN0``,
shared/settings/gc_tuning.py) unless the environment says otherwise.
"""

from __future__ import annotations

import http.client
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from twinbridge.azurite import free_port
from twinbridge.bench.workload import HUB, TOPIC
from twinbridge.localhost.child import HostChild

EVENT_TYPE = "Microsoft.Devices.DeviceTelemetry"
_ID_MARK = "@@EVENT-ID@@"


def large_event_template(event_bytes: int) -> bytes:
    """One Event Grid telemetry event of about ``event_bytes`` bytes, with a placeholder for its id."""
    chunk = "A" * 997  # + quotes and comma: 1,000 bytes a sample

    def build(samples: int) -> bytes:
        body = {"temperature": 21.5, "samples": [chunk] * samples}
        return orjson.dumps({
            "id": _ID_MARK, "topic": TOPIC, "subject": "devices/bench-large-0",
            "eventType": EVENT_TYPE, "eventTime": "2026-11-23T10:00:00.0000000Z", "dataVersion": "",
            "metadataVersion": "1",
            "data": {"properties": {}, "systemProperties": {
                "iothub-connection-device-id": "bench-large-0", "iothub-content-type": "application/json",
                "iothub-content-encoding": "utf-8", "iothub-enqueuedtime": "2026-11-23T10:00:00.0000000Z",
                "iothub-message-source": "Telemetry", "iothub-connection-auth-method": "{}",
                "iothub-connection-auth-generation-id": "637000000000000000"}, "body": body}})
    bare = len(build(0))
    return build(max(1, (event_bytes - bare) // 1000))



def _rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    """A /proc/<pid>/status figure in MB: VmRSS (now) or VmHWM (the peak of this process image). Why not wait4's
    ru_maxrss: Linux keeps the parent's high-water mark across fork and exec, so a host started from a large
    pytest process reported the test runner's RSS (335 MB seen in CI for a 61 MB host)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def large_event_rss(events: int = 1000, event_kb: int = 950, gc_gen0: str | None = None) -> dict[str, Any]:
    """Figures of one run: the child's peak RSS, its sampled RSS range, outcomes and timings."""
    template = large_event_template(event_kb * 1000)
    head, tail = template.split(_ID_MARK.encode())
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="twinbridge-bench-large-") as tmp:
        settings = Path(tmp) / "local.settings.json"
        settings.write_bytes(orjson.dumps({"IsEncrypted": False, "Values": {}}))
        quarantine = Path(tmp) / "quarantine.jsonl"
        env = {**os.environ, "TWINBRIDGE_CONFIG": "", "TWINBRIDGE_ALLOWED_TOPICS": TOPIC,
               "TWINBRIDGE_QUARANTINE_FILE": str(quarantine), "TWINBRIDGE_STATE_STORE": "memory",
               "TWINBRIDGE_TWIN_DB": "", "PYTHONUNBUFFERED": "1"}
        if gc_gen0 is not None:
            env["TWINBRIDGE_GC_GEN0"] = gc_gen0
        child = HostChild(settings, Path(tmp) / "outputs", port=port, env=env, grace=30)
        samples: list[float] = []
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(0.05):
                rss = _rss_mb(child.pid)
                if rss is not None:
                    samples.append(rss)

        statuses: dict[int, int] = {}
        started = time.perf_counter()
        try:
            child.wait_ready(60)
            idle_mb = _rss_mb(child.pid)
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            path = "/runtime/webhooks/eventgrid?functionName=ingest_iothub_events"
            headers = {"Content-Type": "application/json", "aeg-event-type": "Notification"}
            for index in range(events):
                body = b"[" + head + f"bench-large-{index:06d}".encode() + tail + b"]"
                connection.request("POST", path, body=body, headers=headers)
                reply = connection.getresponse()
                reply.read()
                statuses[reply.status] = statuses.get(reply.status, 0) + 1
            connection.close()
            elapsed = time.perf_counter() - started
        finally:
            stop_sampling.set()
            peak_mb = _rss_mb(child.pid, "VmHWM")  # read before the host exits: its own peak since exec
            child.stop()
        quarantined = sum(1 for _ in quarantine.open("rb")) if quarantine.exists() else 0
    return {"large_events": events, "large_event_bytes": len(template) + len(f"bench-large-{0:06d}") - len(_ID_MARK),
            "large_door": "ingest_iothub_events (Event Grid trigger, local host, one event per POST)",
            "large_gc_gen0": env.get("TWINBRIDGE_GC_GEN0", "app default"),
            "large_http_statuses": {str(k): v for k, v in sorted(statuses.items())},
            "large_quarantined": quarantined, "large_seconds": round(elapsed, 1),
            "large_idle_rss_mb": round(idle_mb, 1) if idle_mb else None,
            "large_sampled_rss_mb_max": round(max(samples), 1) if samples else None,
            "large_peak_rss_mb": round(peak_mb, 1) if peak_mb is not None else None, "large_target_peak_rss_mb": 300,
            "large_hub": HUB}
