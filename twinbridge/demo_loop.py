"""The demo's ADT half: the emulator as a subprocess, its event routes, the demo's sites, and the egress checks.

The loop ``make demo`` runs::

    devices → local Event Grid publisher → ingest_iothub_events (local host)
            → the app's ADT adapter (DigitalTwinsClient over HTTPS) → adt serve (the emulator)
            → event routes → route_twin_changes (local host, Event Grid schema webhook)
            → routes (JSON Lines sink) + propagation rule → site twins updated in the emulator

A second event route writes every notification to ``notifications.jsonl`` (the emulator's own record of what it
emitted): the check compares what the app forwarded with what the emulator says it should have.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from twinbridge.localhost.child import stop_child  # also the host child's: one way to stop what the demo started

REPO = Path(__file__).resolve().parents[1]
DEVICE_MODEL = "dtmi:twinbridge:IoTDevice;1"
SITE_MODEL = "dtmi:twinbridge:demo:Site;1"
SITES = tuple(f"site-{n}" for n in range(1, 9))  # ~6 devices each: an average costs ~10 ADT calls
FIRST_LINE = "ADT emulator listening on "



def site_of(device_id: str) -> str:
    return SITES[zlib.crc32(device_id.encode()) % len(SITES)]


class EmulatorProcess:
    """``python -m twinbridge adt serve`` with the demo's endpoints; URL and CA from its first stdout line."""

    def __init__(self, run_dir: Path, host_port: int, log_path: Path, explorer_port: int | None = None) -> None:
        endpoints: dict[str, dict[str, Any]] = {
            # duplicate: 2% delivered twice, as at-least-once delivery may; the app must forward them once
            "app": {"kind": "webhook", "schema": "eventgrid", "lanes": 8, "duplicate": 0.02,
                    "url": f"http://127.0.0.1:{host_port}/runtime/webhooks/eventgrid?functionName=route_twin_changes",
                    "deadletter": str(run_dir / "deadletter-adt.jsonl")},
            "audit": {"kind": "jsonl", "schema": "cloudevents", "path": str(run_dir / "notifications.jsonl")},
        }
        if explorer_port is not None:  # demo --explore: the explorer's live view is fed by a route of its own
            endpoints["explorer"] = {"kind": "webhook", "schema": "eventgrid",
                                     "url": f"http://127.0.0.1:{explorer_port}/api/notifications",
                                     "deadletter": str(run_dir / "deadletter-explorer.jsonl")}
        self.endpoints_file = run_dir / "adt-endpoints.json"
        self.endpoints_file.write_bytes(orjson.dumps({"endpoints": endpoints}, option=orjson.OPT_INDENT_2))
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "twinbridge", "adt", "serve", "--port", "0", "--tls-dir", str(run_dir / "tls"),
             "--models", str(REPO / "models"), "--endpoints", str(self.endpoints_file)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        self.pid = self.process.pid
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode(errors="replace").strip()
        if not line.startswith(FIRST_LINE):
            self.stop()
            raise RuntimeError(f"adt serve did not start ({line!r}); see {log_path}")
        self.url = line.split(" ")[4]
        self.ca = line.split("(CA certificate: ", 1)[1][:-1]

    def client(self) -> Any:
        from azure.digitaltwins.core import DigitalTwinsClient

        from shared.wiring import EmulatorToken

        return DigitalTwinsClient(self.url, EmulatorToken(), connection_verify=self.ca)

    def deliveries(self) -> dict[str, Any]:
        import requests

        response = requests.get(f"{self.url}/$emulator/deliveries", verify=self.ca, timeout=10,
                                headers={"Authorization": "Bearer demo"})
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def stop(self) -> None:
        stop_child(self.process, self.log)


def host_settings(emulator: EmulatorProcess, run_dir: Path) -> dict[str, str]:
    """What the local host needs for the loop: the real ADT adapter against the emulator, the egress config."""
    return {"ADT_URL": emulator.url, "ADT_CREDENTIAL": "emulator", "ADT_CA_CERT": emulator.ca,
            "TWINBRIDGE_CONFIG": str(REPO / "demo" / "loop.yaml"), "TWINBRIDGE_DEMO_DIR": str(run_dir)}


def prepare_graph(client: Any) -> None:
    """The demo's model, sites and event routes (ADT's data plane: what a deployment script would do)."""
    client.create_models([orjson.loads((REPO / "demo" / "models" / "Site.json").read_bytes())])
    for site in SITES:
        client.upsert_digital_twin(site, {"$metadata": {"$model": SITE_MODEL}})
    from azure.digitaltwins.core import DigitalTwinsEventRoute

    client.upsert_event_route("to-app", DigitalTwinsEventRoute(endpoint_name="app",
                                                               filter="type != 'microsoft.iot.telemetry'"))
    client.upsert_event_route("audit", DigitalTwinsEventRoute(endpoint_name="audit", filter="true"))


class Relater:
    """Relates each device twin to its site as soon as the ingest path has created it (site → device,
    ``contains``): the relationships the propagation rule follows, created while the stream runs."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.related: set[str] = set()
        self.created = 0
        self.errors: Counter[str] = Counter()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="demo-relater", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(0.5):
            self.tick()

    def tick(self) -> None:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError

        try:
            twins = list(self.client.query_twins(f"SELECT * FROM DIGITALTWINS WHERE IS_OF_MODEL('{DEVICE_MODEL}')"))
        except HttpResponseError as exc:
            self.errors[type(exc).__name__] += 1
            return
        for twin in twins:
            device = str(twin["$dtId"])
            if device in self.related:
                continue
            site = site_of(device)
            try:
                self.client.upsert_relationship(site, f"{site}-contains-{device}",
                                                {"$targetId": device, "$relationshipName": "contains"})
                self.created += 1
            except ResourceNotFoundError:
                pass  # the device was deleted meanwhile
            except HttpResponseError as exc:
                self.errors[str(exc.error.code if exc.error else exc.status_code)] += 1
                continue
            self.related.add(device)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join(10)


def wait_quiet(emulator: EmulatorProcess, host_stats: Any, timeout: float = 90.0) -> bool:
    """Until the emulator has nothing left to deliver and the host's counters stopped moving for a second."""
    deadline = time.monotonic() + timeout
    last: Any = None
    steady_since = time.monotonic()
    while time.monotonic() < deadline:
        deliveries = emulator.deliveries()
        stats = host_stats()
        now = (deliveries.get("pending"), deliveries.get("notifications"), stats.get("invocations"),
               stats.get("egress"))
        if now != last:
            last, steady_since = now, time.monotonic()
        elif deliveries.get("pending") == 0 and time.monotonic() - steady_since >= 1.0:
            return True
        time.sleep(0.2)
    return False


@dataclass
class EgressCheck:
    emitted: int = 0  # notifications the emulator emitted (its audit route)
    expected: int = 0  # of those, the ones the app's route filter selects
    forwarded: int = 0  # lines the app's JSON Lines sink holds for that route
    problems: list[str] = field(default_factory=list)


def check_egress(run_dir: Path, sinks: list[Path] | None = None) -> EgressCheck:
    """Every notification the route filter selects is forwarded exactly once, and nothing else is (``sinks``: the
    JSON Lines files of every instance; default the run folder's egress.jsonl)."""
    from shared.filters.adt_route import compile_route_filter
    from shared.settings.app_config import AppConfig

    config = AppConfig.load(REPO / "demo" / "loop.yaml", env={"TWINBRIDGE_DEMO_DIR": str(run_dir)})
    route = next(r for r in config.sections["routes"] if r["name"] == "device-updates")
    selects = compile_route_filter(route["filter"])
    emitted = _lines(run_dir / "notifications.jsonl")
    expected = Counter(e["id"] for e in emitted if selects.matches(e))
    forwarded = Counter(r["event"]["id"] for sink in (sinks or [run_dir / "egress.jsonl"]) for r in _lines(sink)
                        if r["route"] == route["name"])
    check = EgressCheck(len(emitted), sum(expected.values()), sum(forwarded.values()))
    for nid in sorted(set(expected) | set(forwarded)):
        if forwarded[nid] != 1 or nid not in expected:
            check.problems.append(f"notification {nid}: expected once, forwarded {forwarded[nid]} time(s)"
                                  + ("" if nid in expected else " (not selected by the route)"))
    return check


@dataclass
class SiteCheck:
    sites: dict[str, tuple[int, float | None]] = field(default_factory=dict)  # site → (devices, average)
    problems: list[str] = field(default_factory=list)


def check_sites(client: Any) -> SiteCheck:
    """Each site's averageTemperature equals the average of its related devices' temperatures, now."""
    check = SiteCheck()
    for site in SITES:
        twin = client.get_digital_twin(site)
        devices = [r["$targetId"] for r in client.list_relationships(site, relationship_id="contains")]
        temps = [t for t in (client.get_digital_twin(d).get("temperature") for d in devices)
                 if isinstance(t, int | float)]
        expected = sum(temps) / len(temps) if temps else None
        actual = twin.get("averageTemperature")
        check.sites[site] = (len(devices), actual)
        if (expected is None) != (actual is None) or (expected is not None and abs(expected - actual) > 1e-9):
            check.problems.append(f"{site}: averageTemperature {actual!r}, its {len(devices)} devices average "
                                  f"{expected!r}")
    return check


def device_twins(client: Any) -> list[dict[str, Any]]:
    return [dict(t) for t in client.query_twins(f"SELECT * FROM DIGITALTWINS WHERE IS_OF_MODEL('{DEVICE_MODEL}')")]


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


class ExplorerProcess:
    """``python -m twinbridge explore`` on the demo's emulator, run folder and host (``demo --explore``); its URL
    comes from its first stdout line. Its live view is fed by the emulator's route ``to-explorer``."""

    def __init__(self, emulator: EmulatorProcess, run_dir: Path, host_url: str, port: int, log_path: Path) -> None:
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "twinbridge", "explore", "--adt", emulator.url, "--ca", emulator.ca, "--port",
             str(port), "--settings", str(run_dir / "local.settings.json"), "--host", host_url],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self.log, stdin=subprocess.DEVNULL)
        self.pid = self.process.pid
        assert self.process.stdout is not None
        line = self.process.stdout.readline().decode(errors="replace").strip()
        if not line.startswith("Explorer listening on "):
            self.stop()
            raise RuntimeError(f"explore did not start ({line!r}); see {log_path}")
        self.url = line.split(" ")[3]
        from azure.digitaltwins.core import DigitalTwinsEventRoute

        emulator.client().upsert_event_route("to-explorer", DigitalTwinsEventRoute(endpoint_name="explorer",
                                                                                    filter="true"))

    def stop(self) -> None:
        stop_child(self.process, self.log)
