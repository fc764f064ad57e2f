"""Door: IoT Hub events delivered by an Event Grid subscription (Event Grid or CloudEvents 1.0 schema).

Thin glue: the event as delivered → the process's group commit, which runs one pipeline batch for all the
invocations waiting at that moment (shared/twins/group_commit.py). ``async def``: the worker runs async functions
concurrently on its event loop (sync ones on its small thread pool), and the host starts one invocation per event of
a delivered array, all at once (docs/doors.md). Permanent failures are quarantined by the pipeline and the invocation
succeeds; it raises only when *its own* event failed transiently. The host then answers Event Grid 500 and the whole
array comes again: harmless, every event is applied idempotently.

Why the parameter is ``str`` and not ``func.EventGridEvent``: the Python worker hands a ``str`` (or ``bytes``)
parameter the binding's JSON text through its generic binding, without azure.functions' Event Grid converter
(docs/doors.md, "Raw trigger binding"). That converter rejects, before any of our code runs, input we must
quarantine instead (an array element that is not an object, an eventTime with a non-zero offset or garbage,
envelope fields of the wrong type, a CloudEvents extension named ``self``): the invocation failed, Event Grid
retried for 24 h and dead-lettered. Its time parser also keeps a ValueError's traceback in a reference cycle that
holds the whole parsed event (up to 1 MB) until the cyclic collector runs (docs/performance.md, "Memory").
"""

from __future__ import annotations

from typing import Any

import azure.functions as func

from functions.runtime import current_app
from shared.ingest.json_elements import parse_element
from shared.settings.gc_tuning import note_input
from shared.twins.pipeline import BatchReport

bp = func.Blueprint()


def parse_delivered(event: str | bytes) -> tuple[Any, int]:
    """The delivered event as the pipeline takes it, and its size on the wire. The JSON text is read as the webhook
    reads each element of its body (shared/ingest/json_elements.parse_element: integers beyond 64 bits exact,
    NaN or a lone surrogate kept for the pipeline to give its code and path), so one problem gets one code on every
    door. Text that is not JSON at all goes as the text itself (quarantined NOT_AN_EVENT, kept whole for replay)."""
    raw = event if isinstance(event, bytes) else event.encode("utf-8", "surrogatepass")
    try:
        return parse_element(raw), len(raw)
    except ValueError:
        return event if isinstance(event, str) else event.decode("utf-8", "replace"), len(raw)


@bp.function_name("ingest_iothub_events")
@bp.event_grid_trigger(arg_name="event")
async def ingest_iothub_events(event: str) -> None:
    parsed, size = parse_delivered(event)
    note_input(size)  # large events: cyclic garbage collected by bytes, not only by object count
    result = await current_app().ingest_commit.submit(parsed, size)
    BatchReport([result]).raise_if_transient()
