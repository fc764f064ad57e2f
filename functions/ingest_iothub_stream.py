"""Door: IoT Hub's built-in Event Hubs endpoint (telemetry, and lifecycle/connection events routed there).

Batches of up to ``host.json``'s ``maxEventBatchSize`` messages from one partition, in partition order. Each
message becomes an Event Grid-shaped event (``shared/doors/eventhub_messages.py``); the events go through the
pipeline in chunks of ``IOTHUB_STREAM_CHUNK`` (patches coalesced per twin within a chunk). Permanent failures are
quarantined; at the first chunk with a transient failure the door stops and raises, so the retry policy runs
the whole batch again — everything already applied is a duplicate (same event ids) and writes nothing.
"""

from __future__ import annotations

import logging
import typing
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import azure.functions as func

from functions._bindings import at, eventhub_batch_door
from functions.runtime import current_app
from shared.doors.eventhub_messages import Ignored, StreamMessage, to_event
from shared.errors import PermanentError, TransientError
from shared.observability import run_batch
from shared.twins.pipeline import BatchReport

log = logging.getLogger("twinbridge.stream")

bp = func.Blueprint()

# Without IOTHUB_RESOURCE_ID nothing from the stream can pass the topic guard: it is quarantined (replayable
# once the setting is fixed) rather than dropped.
UNCONFIGURED_TOPIC = "urn:twinbridge:iothub-resource-id-not-configured"


def to_messages(events: Sequence[func.EventHubEvent]) -> list[StreamMessage]:
    """The batch as plain messages; per-message properties come from the shared trigger metadata arrays."""
    metadata: dict[str, Any] = dict(events[0].metadata or {}) if events else {}
    system_array = metadata.get("SystemPropertiesArray")
    properties_array = metadata.get("PropertiesArray")
    context = metadata.get("PartitionContext")
    partition = context.get("PartitionId") if isinstance(context, dict) else None
    messages = []
    for index, event in enumerate(events):
        system = at(system_array, index) or {f"iothub-{k}": v for k, v in (event.iothub_metadata or {}).items()}
        enqueued = event.enqueued_time
        messages.append(StreamMessage(
            body=event.get_body(), system=system, properties=at(properties_array, index),
            partition=str(partition) if partition is not None else None, sequence_number=event.sequence_number,
            enqueued_time=enqueued.isoformat() if isinstance(enqueued, datetime) else None,
        ))
    return messages


def process_messages(messages: Sequence[StreamMessage]) -> dict[str, int]:
    """Run one batch; raises TransientError when a chunk must come again (after the batch's signals are emitted).
    Returns outcome counts."""
    app = current_app()
    doors = app.settings.doors
    topic = doors.iothub_resource_id or UNCONFIGURED_TOPIC
    # Every message first becomes an event, is ignored, or is refused (pure, cheap); then the events go through
    # the pipeline in chunks. ``events`` stays aligned with ``messages`` for the per-event log lines.
    events: list[dict[str, Any] | None] = [None] * len(messages)
    refused: list[tuple[int, StreamMessage, PermanentError]] = []
    ignored = 0
    for index, message in enumerate(messages):
        try:
            event = to_event(message, topic)
        except PermanentError as exc:
            refused.append((index, message, exc))
            continue
        if isinstance(event, Ignored):
            ignored += 1
        else:
            events[index] = event

    def process(aligned: Sequence[dict[str, Any] | None]) -> BatchReport:
        # Written at once and within one time budget, like the pipeline's own quarantine writes.
        batch = BatchReport(app.pipeline.reject_all([(i, m.describe(), exc) for i, m, exc in refused]))
        pending = [i for i, event in enumerate(aligned) if event is not None]
        for start in range(0, len(pending), doors.stream_chunk_events):
            indexes = pending[start:start + doors.stream_chunk_events]
            report = app.pipeline.process([aligned[i] for i in indexes])
            for result in report.results:
                result.index = indexes[result.index]  # the message's place in the delivered batch
            batch.results.extend(report.results)
            batch.twin_writes += report.twin_writes
            if report.transient:
                break  # the retry policy runs the whole batch again: later chunks wait for it
        return batch

    batch = run_batch("ingest_iothub_stream", events, process, ignored=ignored)
    totals = {"ignored": ignored, "twin_writes": batch.twin_writes, **batch.counts()}
    batch.raise_if_transient()
    return totals


@eventhub_batch_door(bp, "ingest_iothub_stream", connection="IOTHUB_EVENTS_CONNECTION",
                     event_hub_name="%IOTHUB_EVENTS_NAME%", consumer_group="%IOTHUB_EVENTS_CONSUMER_GROUP%")
# typing.List, not list[...]: see functions/_bindings.py eventhub_batch_door.
def ingest_iothub_stream(events: typing.List[func.EventHubEvent]) -> None:  # noqa: UP006
    messages = to_messages(events)
    try:
        process_messages(messages)  # its summary line and metrics: shared/observability.py
    except TransientError as exc:
        log.warning("stream batch of %d stopped at a transient failure, it will be retried: %s", len(messages), exc)
        raise

