"""``python -m twinbridge demo`` (what ``make demo`` runs): the whole flow on this machine, checked end to end.

Azurite (when Node and node_modules/.bin/azurite are there) → the ADT emulator (``adt serve``, a subprocess, with
two event routes) → the local Functions host (a subprocess, the app on its real ADT adapter over HTTPS) → ~50
simulated devices for ~20 s through the local Event Grid publisher with chaos, related to eight site twins as they
appear → the emulator's notifications back through ``route_twin_changes`` (a JSON Lines route and a propagation rule
keeping each site's average temperature) → a summary from the host's and the emulator's counters → every device
twin compared with what its device last reported, every selected notification forwarded exactly once, every site's
average checked (twinbridge/demo_loop.py). Everything it starts is stopped by process id, also on
failure. Exit status 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from twinbridge.commands.host import wait_for_stop_signal
from twinbridge.localhost.child import HostChild

REPO = Path(__file__).resolve().parents[2]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="run the whole flow locally (Azurite, host, simulator) and check it")
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of simulated traffic (default 20)")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second (default 50)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-azurite", action="store_true", help="keep the state in memory even if Azurite exists")
    parser.add_argument("--dir", default=str(REPO / ".run" / "demo"), help="run folder (wiped first)")
    parser.add_argument("--explore", action="store_true",
                        help="also serve the browser explorer on the demo's twins (live changes through an event "
                             "route) and keep everything running after the check until Ctrl-C (make demo EXPLORE=1)")
    parser.set_defaults(handler=run)


def say(text: str = "") -> None:
    print(text, flush=True)


def host_python() -> str:
    """The host child's Python: the 3.13 venv (``make runtime-test``/``make demo`` build it) when present, so the
    demo runs through azure-functions-runtime as Azure does; else this Python (TWINBRIDGE_HOST_PYTHON overrides)."""
    chosen = os.environ.get("TWINBRIDGE_HOST_PYTHON")
    if chosen:
        return chosen
    venv313 = REPO / ".venv313" / "bin" / "python"
    return str(venv313) if venv313.is_file() and (REPO / ".venv313" / ".installed").is_file() else sys.executable


def host_label() -> str:
    python = host_python()
    return "Python 3.13 + azure-functions-runtime" if ".venv313" in python else f"{Path(python).name}, in-process"


def start_host(settings: Path, outputs: Path, log_path: Path, port: int = 0) -> HostChild:
    """``python -m twinbridge host`` as a child (on :func:`host_python`); its log goes to a file, its URL comes from
    stdout. The app's own settings come from ``settings`` only: none are inherited from this environment."""
    return HostChild(settings, outputs, port=port, log=log_path, python=host_python())


def write_settings(path: Path, run_dir: Path, storage: str | None, topic: str,
                   extra: dict[str, str] | None = None) -> None:
    values = {
        "FUNCTIONS_WORKER_RUNTIME": "python",
        "TWINBRIDGE_ALLOWED_TOPICS": topic,
        "TWINBRIDGE_TWIN_DB": str(run_dir / "twins.db"),
        "TWINBRIDGE_QUARANTINE_FILE": str(run_dir / "quarantine.jsonl"),
        "TWINBRIDGE_STATE_STORE": "table" if storage else "memory",
        # No Event Hubs emulator here: the stream doors stay off, as you would disable them under `func start`.
        "AzureWebJobs.ingest_iothub_stream.Disabled": "true",
        "AzureWebJobs.route_twin_changes_eventhub.Disabled": "true",
    }
    if storage:
        values["AzureWebJobsStorage"] = storage
        values["TWINBRIDGE_FORWARDING_STORE"] = "table"  # egress forwarding records shared as in Azure
    values.update(extra or {})
    path.write_bytes(orjson.dumps({"IsEncrypted": False, "Values": values}, option=orjson.OPT_INDENT_2))


def run(args: argparse.Namespace) -> int:
    from twinbridge import demo_loop
    from twinbridge.simulator.fleet import TOPIC
    from twinbridge.simulator.run import SimulationOptions, run_simulation

    started = time.monotonic()
    run_dir = Path(args.dir).resolve()
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    azurite: Any = None
    host: HostChild | None = None
    emulator: demo_loop.EmulatorProcess | None = None
    relater: demo_loop.Relater | None = None
    explorer: demo_loop.ExplorerProcess | None = None
    try:
        storage = None
        if not args.no_azurite:
            azurite, why = _start_azurite(run_dir / "azurite")
            if azurite is not None:
                storage = azurite.connection_string
                say(f"state store: Azure Table Storage on Azurite (pid {azurite.pid}, table port {azurite.table_port})")
            else:
                say(f"state store: memory — Azurite not started ({why})")
        else:
            say("state store: memory (--no-azurite)")
        from twinbridge.azurite import free_port

        port = free_port()
        explorer_port = free_port() if args.explore else None
        emulator = demo_loop.EmulatorProcess(run_dir, port, run_dir / "adt-emulator.log", explorer_port)
        client = emulator.client()
        demo_loop.prepare_graph(client)
        say(f"ADT emulator: {emulator.url} (pid {emulator.pid}, event routes to-app → route_twin_changes, "
            f"audit → {_rel(run_dir / 'notifications.jsonl')})")
        settings = run_dir / "local.settings.json"
        write_settings(settings, run_dir, storage, TOPIC, demo_loop.host_settings(emulator, run_dir))
        host = start_host(settings, run_dir / "outputs", run_dir / "host.log", port)
        url = host.wait_ready(60)
        say(f"local host: {url} (pid {host.pid}, {host_label()}, log {_rel(run_dir / 'host.log')}), twins through "
            f"the ADT adapter over HTTPS (ADT_CREDENTIAL=emulator)")
        if explorer_port is not None:
            explorer = demo_loop.ExplorerProcess(emulator, run_dir, url, explorer_port, run_dir / "explorer.log")
            say(f"explorer: {explorer.url} (pid {explorer.pid}, live changes through the event route to-explorer)")
        relater = demo_loop.Relater(client)
        relater.start()
        say(f"simulating {args.devices} devices for {args.duration:g} s at {args.rate:g} events/s with chaos "
            f"(subscription {_rel(REPO / 'demo' / 'subscription.json')}) ...")
        options = SimulationOptions(
            target=f"{url}/runtime/webhooks/eventgrid?functionName=ingest_iothub_events", devices=args.devices,
            duration=args.duration, rate=args.rate, subscription=str(REPO / "demo" / "subscription.json"),
            chaos=True, seed=args.seed, faulty=0.01, time_scale=0.01, deadletter_dir=str(run_dir / "deadletter"),
            drain_timeout=60.0, retire=2)
        result = run_simulation(options)
        for line in result.summary_lines():
            say("  " + line)
        relater.tick()  # devices created in the last moments
        relater.finish()
        quiet = demo_loop.wait_quiet(emulator, lambda: _host_stats(url))
        stats = _host_stats(url)
        twins = demo_loop.device_twins(client)
        mismatches = result.expectation.compare(twins)
        _summary(stats, twins, run_dir)
        egress = demo_loop.check_egress(run_dir)
        sites = demo_loop.check_sites(client)
        deliveries = emulator.deliveries()
        _loop_summary(stats, deliveries, egress, sites, relater, run_dir)
        gone = len(result.expectation.deleted)
        say(f"check: {len(twins)} twins compared with what their devices last reported, {gone} deleted devices "
            f"without a twin: {len(mismatches)} mismatches")
        for mismatch in mismatches[:10]:
            say(f"  MISMATCH {mismatch}")
            for line in _history(result, mismatch.twin_id, mismatch.field):
                say(f"    {line}")
        say(f"check egress: {egress.expected} notifications selected by the route, {egress.forwarded} forwarded: "
            f"{len(egress.problems)} mismatches; sites: {len(sites.problems)} mismatches")
        for problem in (egress.problems + sites.problems)[:10]:
            say(f"  MISMATCH {problem}")
        ok = (not mismatches and result.drained and not stats.get("failures") and quiet and not egress.problems
              and not sites.problems)
        say(f"demo {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s; what ADT emitted: "
            f"{_rel(run_dir / 'notifications.jsonl')}, what the app forwarded: {_rel(run_dir / 'egress.jsonl')}")
        if explorer is not None:
            say(f"explorer: open {explorer.url} — the twins stay up (devices, sites, live changes) until Ctrl-C")
            if wait_for_stop_signal() == signal.SIGINT:
                say("")  # after the ^C the terminal echoed
        return 0 if ok else 1
    finally:
        if explorer is not None:
            explorer.stop()
            say(f"stopped explorer (pid {explorer.pid})")
        if relater is not None:
            relater.finish()
        if host is not None:
            host.stop()
            say(f"stopped local host (pid {host.pid})")
        if emulator is not None:
            emulator.stop()
            say(f"stopped ADT emulator (pid {emulator.pid})")
        if azurite is not None:
            azurite.stop()
            say(f"stopped Azurite (pid {azurite.pid})")


def _rel(path: Path) -> str:
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def _start_azurite(workdir: Path) -> tuple[Any, str]:
    try:
        from twinbridge.azurite import azurite_missing_reason, start_azurite
    except ImportError:
        return None, "twinbridge.azurite is not available"
    reason = azurite_missing_reason()
    if reason is not None:
        return None, reason
    return start_azurite(workdir), ""


def _history(result: Any, device_id: str, field: str) -> list[str]:
    """The device's events that bear on ``field``, in the order it sent them, and whether each was accepted."""
    lines = []
    for event_id, effect in result.fleet.effects.items():
        if effect.device_id != device_id:
            continue
        delivered = "delivered" if result.expectation.accepted(event_id) else "not delivered"
        if field == "connectionState" and effect.kind == "connection":
            state = "Connected" if effect.connected else "Disconnected"
            lines.append(f"{event_id} seq {effect.sequence:X} {state} ({delivered})")
        elif field in effect.values:
            lines.append(f"{event_id} enqueued {effect.enqueued} {field}={effect.values[field]!r} ({delivered})")
    return lines[-6:]


def _host_stats(url: str) -> dict[str, Any]:
    import requests

    response = requests.get(f"{url}/admin/twinbridge/stats", timeout=10)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


def _summary(stats: dict[str, Any], twins: list[dict[str, Any]], run_dir: Path) -> None:
    states = Counter(str(t.get("connectionState", "-")) for t in twins)
    properties = sum(1 for t in twins for k in t if not k.startswith("$"))
    outcomes = stats.get("outcomes", {})
    codes = ", ".join(f"{k} {v}" for k, v in sorted(stats.get("codes", {}).items())) or "none"
    invocations = sum(stats.get("invocations", {}).values())
    failures = sum(stats.get("failures", {}).values())
    say(f"twins: {len(twins)}, properties: {properties}, connection: "
        + ", ".join(f"{k} {v}" for k, v in sorted(states.items())))
    say(f"host: {invocations} invocations ({failures} failed), {stats.get('twin_writes', 0)} twin writes")
    say("events: " + ", ".join(f"{k} {outcomes.get(k, 0)}" for k in
                               ("applied", "stale", "duplicate", "filtered", "quarantined", "retry"))
        + f" (codes: {codes}; quarantine {_rel(run_dir / 'quarantine.jsonl')})")
    outputs = stats.get("outputs", {})
    if outputs:
        say("output bindings: " + ", ".join(f"{k} {v}" for k, v in sorted(outputs.items())))


def _loop_summary(stats: dict[str, Any], deliveries: dict[str, Any], egress: Any, sites: Any, relater: Any,
                  run_dir: Path) -> None:
    """The ADT → egress half: what the emulator emitted and delivered, what the app did with it."""
    app = deliveries.get("endpoints", {}).get("app", {})
    say(f"adt emulator: {deliveries.get('notifications', 0)} notifications, {relater.created} relationships "
        f"created by the demo; event route to-app: {app.get('delivered', 0)} delivered "
        f"({app.get('duplicated', 0)} delivered twice on purpose, {app.get('retried', 0)} retries, "
        f"{app.get('deadlettered', 0)} dead-lettered)")
    e = stats.get("egress", {})
    say(f"egress: {e.get('notifications', 0)} notifications received, {e.get('forwarded', 0)} forwarded to "
        f"{_rel(run_dir / 'egress.jsonl')}, {e.get('duplicates', 0)} skipped as duplicates, "
        f"{e.get('propagated_writes', 0)} propagated writes, {e.get('quarantined', 0)} quarantined")
    say("sites (averageTemperature): " + ", ".join(
        f"{site} {avg if avg is None else round(avg, 2)} over {n} devices" for site, (n, avg) in sites.sites.items()))
