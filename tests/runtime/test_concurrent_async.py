"""In the real execution runtime (azure-functions-runtime), concurrent invocations of the ``async def`` Event Grid
trigger door overlap: they run together on the runtime's event loop, so the group commit
(shared/twins/group_commit.py) gathers them into one pipeline batch — and one event's transient failure fails only
its own invocation.

The runtime is driven through twinbridge/localhost/real_runtime.py as the host's proxy worker drives it, in a child
process of its own: the runtime indexes function_app once per process (a second RealRuntime in the same process is
refused: "does not have a unique function name"), and test_real_runtime.py holds this process's.

How overlap is shown: the door's group commit gets a long window here (300 ms). Invocations run one after the other
would each wait out their own window and make a batch each (8 batches, at least 8 × 300 ms); overlapping ones make
one batch of 8 in about one window.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.local_host import skip_without_real_runtime

skip_without_real_runtime()

from tests.support import event_factory as factory  # noqa: E402
from tests.support.local_host import host_env, host_url  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
WINDOW_MS = 300.0
INVOCATIONS = 8

# Runs in the child: the app in memory with a long group-commit window, the runtime started as the host starts it,
# then the invocations of one "delivered array" sent at once (the proxy worker hands each to the runtime as it comes;
# rt.invoke waits for its answer, hence a thread per invocation).
CHILD = """
import json, sys, threading, time
from functions.runtime import use_app
from shared.errors import Code, TransientError
from shared.settings.environment import Settings
from shared.settings.throughput import ThroughputSettings
from tests.support import event_factory as factory
from tests.support.rig import make_app
from twinbridge.localhost.real_runtime import RealRuntime

window_ms, n = float(sys.argv[1]), int(sys.argv[2])
rt = RealRuntime()
rt.start()


def fresh_app():
    settings = Settings(throughput=ThroughputSettings(group_commit_window_ms=window_ms,
                                                      group_commit_max_wait_ms=10 * window_ms * n))
    app = make_app(settings=settings)
    use_app(app)
    return app


def all_at_once(prefix):
    events = [factory.lifecycle(f"{prefix}-{i}", second=1) for i in range(n)]
    results = [None] * n
    barrier = threading.Barrier(n)

    def call(i):
        barrier.wait()
        results[i] = rt.invoke("ingest_iothub_events", {"event": rt.json(events[i])})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results, time.perf_counter() - started


out = {}
app = fresh_app()
results, wall = all_at_once("dev-overlap")
out["overlap"] = {"ok": [r.ok for r in results], "errors": [r.error for r in results if not r.ok], "wall": wall,
                  "batches": app.ingest_commit.batches, "flushed": app.ingest_commit.flushed_events,
                  "twins": sorted(t["$dtId"] for t in app.twins.list_twins())}
app.ingest_commit.close()

app = fresh_app()
create = app.twins.create_twin


def flaky(twin_id, document):
    if twin_id == "dev-flaky-3":
        raise TransientError(Code.ADT_UNAVAILABLE, "injected outage")
    return create(twin_id, document)


app.twins.create_twin = flaky
results, _ = all_at_once("dev-flaky")
out["flaky"] = {"failed": [i for i, r in enumerate(results) if not r.ok], "batches": app.ingest_commit.batches}
app.ingest_commit.close()
use_app(None)
rt.close()
print("RESULT " + json.dumps(out))
"""


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", CHILD, str(WINDOW_MS), str(INVOCATIONS)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=240)
    lines = [line for line in run.stdout.splitlines() if line.startswith("RESULT ")]
    assert run.returncode == 0 and lines, run.stderr[-3000:]
    result: dict[str, Any] = json.loads(lines[-1][len("RESULT "):])
    return result


def test_concurrent_async_invocations_overlap_and_share_one_pipeline_batch(measured: dict[str, Any]) -> None:
    overlap = measured["overlap"]
    assert all(overlap["ok"]), overlap["errors"]
    assert (overlap["batches"], overlap["flushed"]) == (1, INVOCATIONS)
    assert overlap["wall"] < INVOCATIONS * WINDOW_MS / 1000 / 2  # one after the other would take ≥ 8 × 300 ms
    assert {f"dev-overlap-{i}" for i in range(INVOCATIONS)} <= set(overlap["twins"])


@pytest.mark.integration
def test_the_local_host_on_the_real_runtime_dispatches_an_array_at_once(tmp_path: Path) -> None:
    """`python -m twinbridge host` on 3.13 invokes through the runtime; an array's invocations must all be started
    at once (the runtime runs the async door on its loop), so one delivery is one batch, as behind the real host."""
    import orjson
    import requests

    settings = tmp_path / "local.settings.json"
    settings.write_bytes(orjson.dumps({"IsEncrypted": False, "Values": {
        "TWINBRIDGE_ALLOWED_TOPICS": factory.TOPIC, "TWINBRIDGE_STATE_STORE": "memory",
        "TWINBRIDGE_QUARANTINE": "memory", "TWINBRIDGE_GROUP_COMMIT_WINDOW_MS": "200",
        "TWINBRIDGE_GROUP_COMMIT_MAX_WAIT_MS": "20000",
        "AzureWebJobs.ingest_iothub_stream.Disabled": "true",
        "AzureWebJobs.route_twin_changes_eventhub.Disabled": "true"}}))
    process = subprocess.Popen([sys.executable, "-m", "twinbridge", "host", "--port", "0", "--settings",
                                str(settings)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=host_env())
    try:
        url = host_url(process)
        assert url, "the host did not start"
        array = [factory.lifecycle(f"dev-array-{i}", second=1) for i in range(24)]
        reply = requests.post(f"{url}/runtime/webhooks/eventgrid?functionName=ingest_iothub_events",
                              data=orjson.dumps(array), timeout=60,
                              headers={"aeg-event-type": "Notification", "Content-Type": "application/json"})
        assert reply.status_code == 202, reply.text
        stats = requests.get(f"{url}/admin/twinbridge/stats", timeout=30).json()
    finally:
        process.terminate()
        process.communicate(timeout=30)
    assert stats["invocations"] == {"ingest_iothub_events": 24}
    assert stats["batches"] == 1  # a bounded pool would start them a few at a time: several windows, several batches


def test_only_the_invocation_whose_event_failed_transiently_fails(measured: dict[str, Any]) -> None:
    flaky = measured["flaky"]
    assert flaky["failed"] == [3]  # the host then answers 500 and Event Grid resends the array: the others are no-ops
    assert flaky["batches"] == 1
