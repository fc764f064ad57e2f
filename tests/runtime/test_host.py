"""`python -m twinbridge host` serves only what the real runtime accepts.

On 3.13 (the real-runtime tier) it indexes, loads and invokes through azure-functions-runtime and says so; on any
Python a function the worker would refuse stops the host with a non-zero exit naming the function and the reason.
Each host runs in its own process (the runtime keeps its function registry process-wide, as the worker does).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import requests

from tests.support import event_factory as factory
from tests.support.local_host import host_env, host_url
from twinbridge.localhost import real_runtime

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _settings(folder: Path) -> Path:
    path = folder / "local.settings.json"
    path.write_bytes(orjson.dumps({"IsEncrypted": False, "Values": {
        "TWINBRIDGE_ALLOWED_TOPICS": factory.TOPIC, "TWINBRIDGE_TWIN_DB": str(folder / "twins.db"),
        "TWINBRIDGE_QUARANTINE_FILE": str(folder / "quarantine.jsonl"), "TWINBRIDGE_STATE_STORE": "memory",
        "AzureWebJobs.ingest_iothub_stream.Disabled": "true",
        "AzureWebJobs.route_twin_changes_eventhub.Disabled": "true"}}))
    return path


def _copy_app(target: Path) -> Path:
    target.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyd")
    for item in ("function_app.py", "host.json"):
        shutil.copy2(ROOT / item, target / item)
    for folder in ("functions", "shared", "twinbridge", "models", "samples"):
        shutil.copytree(ROOT / folder, target / folder, ignore=ignore)
    return target


def test_a_function_the_worker_refuses_stops_the_host(tmp_path: Path) -> None:
    app = _copy_app(tmp_path / "app")
    door = app / "functions" / "ingest_iothub_stream.py"
    source = door.read_text()
    assert "events: typing.List[func.EventHubEvent]" in source
    door.write_text(source.replace("events: typing.List[func.EventHubEvent]", "events: list[func.EventHubEvent]"))
    run = subprocess.run([sys.executable, "-m", "twinbridge", "host", "--port", "0", "--settings",
                          str(_settings(tmp_path))], cwd=app, capture_output=True, text=True, timeout=120,
                         env=host_env())
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Host refused to start" in run.stderr
    assert "ingest_iothub_stream" in run.stderr
    assert "invalid non-type annotation list[azure.functions._eventhub.EventHubEvent]" in run.stderr
    assert "Host listening" not in run.stdout


@pytest.mark.skipif(real_runtime.available() is not None, reason=f"real runtime: {real_runtime.available()}")
def test_host_on_3_13_runs_through_the_real_runtime(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-m", "twinbridge", "host", "--port", "0", "--settings",
                                str(_settings(tmp_path))], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=host_env())
    try:
        url = host_url(process)
        assert url, "the host did not start"
        webhook = f"{url}/runtime/webhooks/eventgrid?functionName=ingest_iothub_events"
        events = [factory.lifecycle("dev-host", second=1),
                  factory.to_cloudevent(factory.telemetry("dev-host", {"temperature": 20.5}, second=2))]
        for event in events:  # one at a time: the second updates the twin the first creates
            reply = requests.post(webhook, data=orjson.dumps([event]), timeout=30,
                                  headers={"aeg-event-type": "Notification", "Content-Type": "application/json"})
            assert reply.status_code == 202, reply.text
        handshake = requests.post(f"{url}/api/eventgrid", timeout=30, headers={
            "aeg-event-type": "SubscriptionValidation"}, data=orjson.dumps([{
                "id": "v", "topic": "t", "subject": "", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                "eventTime": "2026-11-23T10:00:00Z", "dataVersion": "2", "data": {"validationCode": "C-1"}}]))
        assert (handshake.status_code, handshake.json()) == (200, {"validationResponse": "C-1"})
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert "running through the real Functions runtime: azure-functions-runtime 1.3.0" in stderr
    from shared.adapters.twins.embedded import TwinGraph
    from shared.adapters.twins.embedded.store import EmbeddedTwinStore

    graph = EmbeddedTwinStore(TwinGraph(tmp_path / "twins.db"))
    try:
        twins = {t["$dtId"]: t for t in graph.list_twins()}
    finally:
        graph.close()
    assert twins["dev-host"]["temperature"] == 20.5
