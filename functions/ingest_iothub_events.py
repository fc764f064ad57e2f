"""Door: IoT Hub events delivered by an Event Grid subscription (Event Grid or CloudEvents 1.0 schema).

Thin glue: the binding's object → the plain event dict in its own schema → the process's group commit, which runs
one pipeline batch for all the invocations waiting at that moment (shared/twins/group_commit.py). ``async def``: the
worker runs async functions concurrently on its event loop (sync ones on its small thread pool), and the host starts
one invocation per event of a delivered array, all at once (docs/doors.md). Permanent failures are quarantined by the
pipeline and the invocation succeeds; it raises only when *its own* event failed transiently. The host then answers
Event Grid 500 and the whole array comes again: harmless, every event is applied idempotently.
"""

from __future__ import annotations

import azure.functions as func

from functions._bindings import to_plain_event
from functions.runtime import current_app
from shared.twins.pipeline import BatchReport

bp = func.Blueprint()


@bp.function_name("ingest_iothub_events")
@bp.event_grid_trigger(arg_name="event")
async def ingest_iothub_events(event: func.EventGridEvent) -> None:
    result = await current_app().ingest_commit.submit(to_plain_event(event))
    BatchReport([result]).raise_if_transient()
