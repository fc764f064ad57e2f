"""Door: IoT Hub events delivered by an Event Grid subscription (Event Grid or CloudEvents 1.0 schema).

Thin glue: the binding's object → the plain event dict in its own schema → the pipeline. Permanent failures are
quarantined by the pipeline and the invocation succeeds; a transient failure raises so Event Grid redelivers.
"""

from __future__ import annotations

import azure.functions as func

from functions._bindings import to_plain_event
from functions.runtime import current_app
from shared.observability import run_batch

bp = func.Blueprint()


@bp.function_name("ingest_iothub_events")
@bp.event_grid_trigger(arg_name="event")
def ingest_iothub_events(event: func.EventGridEvent) -> None:
    events = [to_plain_event(event)]
    report = run_batch("ingest_iothub_events", events, current_app().pipeline.process)
    report.raise_if_transient()
