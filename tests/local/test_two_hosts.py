"""Two local hosts sharing the ADT emulator and Azurite, as two instances of the Function App in Azure share ADT and
the storage account: one simulated stream, split between them request by request, with 0 mismatches.

A small front end alternates the requests between the two hosts — Event Grid's deliveries of the IoT Hub stream and
the emulator's event route deliveries alike — so each twin's events and each notification land on either instance.
Checked: every device twin equals what its device last reported; every notification the egress route selects is
forwarded exactly once across both instances (their forwarding records are shared in Table Storage); each site's
average (the propagation rule) equals its devices' average.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from twinbridge import demo_loop
from twinbridge.azurite import Azurite, free_port
from twinbridge.commands.demo import start_host, write_settings
from twinbridge.localhost.child import HostChild
from twinbridge.simulator.fleet import TOPIC
from twinbridge.simulator.run import SimulationOptions, run_simulation

pytestmark = pytest.mark.integration


class FrontEnd:
    """Round robin over the backends, one request at a time (what a load balancer in front of instances does)."""

    def __init__(self, port: int) -> None:
        self.backends: list[str] = []
        self.counts: Counter[str] = Counter()
        turn = itertools.count()
        front = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                backend = front.backends[next(turn) % len(front.backends)]
                front.counts[backend] += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                try:
                    answer = requests.request(self.command, backend + self.path, data=body, headers=headers,
                                              timeout=60)
                except requests.RequestException:
                    self.send_response(503)
                    self.end_headers()
                    return
                self.send_response(answer.status_code)
                for name in ("Content-Type", "WebHook-Allowed-Origin", "Allow"):
                    if name in answer.headers:
                        self.send_header(name, answer.headers[name])
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_POST = do_GET = do_OPTIONS = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_two_hosts_split_one_stream_with_zero_mismatches(tmp_path: Path, azurite: Azurite) -> None:
    port = free_port()
    front = FrontEnd(port)
    emulator = demo_loop.EmulatorProcess(tmp_path, port, tmp_path / "adt-emulator.log")
    hosts: list[HostChild] = []
    relater = None
    try:
        client = emulator.client()
        demo_loop.prepare_graph(client)
        tables = {"TWINBRIDGE_STATE_TABLE": "s" + uuid.uuid4().hex[:16],
                  "TWINBRIDGE_FORWARDING_TABLE": "f" + uuid.uuid4().hex[:16]}
        sinks = []
        for name in ("a", "b"):
            run_dir = tmp_path / name
            run_dir.mkdir()
            settings = run_dir / "local.settings.json"
            write_settings(settings, run_dir, azurite.connection_string, TOPIC,
                           {**demo_loop.host_settings(emulator, run_dir), **tables})
            hosts.append(start_host(settings, run_dir / "outputs", run_dir / "host.log"))
            sinks.append(run_dir / "egress.jsonl")
        front.backends = [host.wait_ready(60) for host in hosts]
        relater = demo_loop.Relater(client)
        relater.start()
        result = run_simulation(SimulationOptions(
            target=f"http://127.0.0.1:{port}/runtime/webhooks/eventgrid?functionName=ingest_iothub_events",
            devices=16, duration=6.0, rate=30.0, chaos=True, seed=11, faulty=0.01, time_scale=0.01,
            deadletter_dir=str(tmp_path / "deadletter"), drain_timeout=60.0, retire=1), progress=False)
        relater.tick()
        relater.finish()

        def stats() -> dict[str, Any]:
            merged: dict[str, Any] = {}
            for url in front.backends:
                merged[url] = requests.get(f"{url}/admin/twinbridge/stats", timeout=10).json()
            return merged

        assert demo_loop.wait_quiet(emulator, stats, timeout=90)
        assert result.drained
        per_host = stats()
        assert all(s["egress"].get("notifications", 0) > 0 for s in per_host.values()), per_host  # both did egress
        assert all(s["invocations"].get("ingest_iothub_events", 0) > 0 for s in per_host.values()), per_host
        assert result.expectation.compare(demo_loop.device_twins(client)) == []
        egress = demo_loop.check_egress(tmp_path, sinks)
        assert egress.expected > 0 and egress.problems == []
        assert all(_lines_count(sink) > 0 for sink in sinks)  # both instances forwarded
        assert demo_loop.check_sites(client).problems == []
    finally:
        if relater is not None:
            relater.finish()
        for host in hosts:
            host.stop()
        emulator.stop()
        front.stop()


def _lines_count(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0
