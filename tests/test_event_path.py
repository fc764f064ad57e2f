"""The path of one telemetry event through the Event Grid trigger door, file by file, as docs/architecture.md shows
it: recorded with a profiler over one invocation (after a warm-up), in every thread. A new file on the path is a
change of the architecture: update the list and the doc together."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from types import FrameType
from typing import Any

import orjson

from functions.ingest_iothub_events import ingest_iothub_events
from functions.runtime import use_app
from tests.support import event_factory as factory
from tests.support.rig import make_app

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

DOCUMENTED_PATH = [  # docs/architecture.md, "One telemetry event", in first-call order
    "functions/ingest_iothub_events.py", "shared/ingest/json_elements.py", "shared/settings/gc_tuning.py",
    "functions/runtime.py", "shared/twins/group_commit.py", "shared/twins/deadline.py", "shared/wiring.py",
    "shared/observability.py", "shared/twins/pipeline.py", "shared/ingest/intake.py", "shared/ingest/timeparse.py",
    "shared/ingest/guard.py", "shared/ingest/validation.py", "shared/ingest/mapping.py", "shared/ingest/decode.py",
    "shared/adapters/twins/embedded/catalog.py", "shared/twins/applier.py", "shared/adapters/twins/embedded/store.py",
    "shared/adapters/twins/embedded/graph.py", "shared/adapters/state/memory.py", "shared/twins/freshness.py",
    "shared/twins/patch_plan.py",
]
DOCUMENTED_TRANSITIONS = 54  # file-to-file steps along that path (docs/architecture.md)


def test_one_telemetry_event_takes_the_documented_path() -> None:
    order: list[str] = []
    recording = False

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call" or not recording:
            return
        name = frame.f_code.co_filename
        relative = name[len(ROOT):].replace(os.sep, "/")
        ours = name.startswith(ROOT) and relative.split("/")[0] in ("functions", "shared", "twinbridge")
        if ours and (not order or order[-1] != relative):
            order.append(relative)

    def deliver(temperature: float) -> None:
        text = orjson.dumps(factory.telemetry("path-device", {"temperature": temperature})).decode()
        asyncio.run(ingest_iothub_events(text))

    use_app(make_app())
    sys.setprofile(profile)
    threading.setprofile(profile)  # each asyncio.run starts (and ends) the executor thread the batch runs on
    try:
        deliver(20.0)  # warm-up: the twin exists, caches are what a running instance has
        recording = True
        deliver(21.0)
        recording = False
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        use_app(None)
    files = list(dict.fromkeys(order))
    print(f"\n{len(files)} project files, {len(order) - 1} file-to-file transitions")
    assert files == DOCUMENTED_PATH
    assert len(order) - 1 == DOCUMENTED_TRANSITIONS
