"""Door: IoT Hub's built-in Event Hubs endpoint (telemetry, and lifecycle/connection events routed there).

Batches of up to ``host.json``'s ``maxEventBatchSize`` messages from one partition, in partition order. Each
message becomes an Event Grid-shaped event (``shared/doors/eventhub_messages.py``); the events go through the
pipeline in chunks of ``IOTHUB_STREAM_CHUNK`` (patches coalesced per twin within a chunk). Permanent failures are
quarantined; at the first chunk with a transient failure the door stops and raises, so the retry policy runs
the whole batch again — everything already applied is a duplicate (same event ids) and writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import azure.functions as func

from functions.runtime import current_app
from shared.doors.eventhub_messages import Ignored, StreamMessage, to_event
from shared.errors import PermanentError, TransientError

log = logging.getLogger("twinbridge.stream")

bp = func.Blueprint()

# Without IOTHUB_RESOURCE_ID nothing from the stream can pass the topic guard: it is quarantined (replayable
# once the setting is fixed) rather than dropped.
UNCONFIGURED_TOPIC = "urn:twinbridge:iothub-resource-id-not-configured"


def _at(items: Any, index: int) -> dict[str, Any]:
    if isinstance(items, list) and index < len(items) and isinstance(items[index], dict):
        return dict(items[index])
    return {}


def to_messages(events: Sequence[func.EventHubEvent]) -> list[StreamMessage]:
    """The batch as plain messages; per-message properties come from the shared trigger metadata arrays."""
    metadata: dict[str, Any] = dict(events[0].metadata or {}) if events else {}
    system_array = metadata.get("SystemPropertiesArray")
    properties_array = metadata.get("PropertiesArray")
    context = metadata.get("PartitionContext")
    partition = context.get("PartitionId") if isinstance(context, dict) else None
    messages = []
    for index, event in enumerate(events):
        system = _at(system_array, index) or {f"iothub-{k}": v for k, v in (event.iothub_metadata or {}).items()}
        enqueued = event.enqueued_time
        messages.append(StreamMessage(
            body=event.get_body(), system=system, properties=_at(properties_array, index),
            partition=str(partition) if partition is not None else None, sequence_number=event.sequence_number,
            enqueued_time=enqueued.isoformat() if isinstance(enqueued, datetime) else None,
        ))
    return messages


def process_messages(messages: Sequence[StreamMessage]) -> dict[str, int]:
    """Run one batch; raises TransientError at the first chunk that must come again. Returns outcome counts."""
    app = current_app()
    doors = app.settings.doors
    topic = doors.iothub_resource_id or UNCONFIGURED_TOPIC
    totals: dict[str, int] = {"ignored": 0, "twin_writes": 0}
    chunk: list[dict[str, Any]] = []

    def flush() -> None:
        if not chunk:
            return
        report = app.pipeline.process(chunk)
        totals["twin_writes"] += report.twin_writes
        for outcome, count in report.counts().items():
            totals[outcome] = totals.get(outcome, 0) + count
        chunk.clear()
        report.raise_if_transient()

    for index, message in enumerate(messages):
        try:
            event = to_event(message, topic)
        except PermanentError as exc:
            app.pipeline.reject(message.describe(), exc, index)
            totals["quarantined"] = totals.get("quarantined", 0) + 1
            continue
        if isinstance(event, Ignored):
            totals["ignored"] += 1
            continue
        chunk.append(event)
        if len(chunk) >= doors.stream_chunk_events:
            flush()
    flush()
    return totals


@bp.function_name("ingest_iothub_stream")
# Only transient failures raise (permanent ones are quarantined), so retrying without limit means a partition
# waits while Digital Twins is unavailable instead of skipping past events. Back-off 5 s … 5 min.
@bp.retry(strategy="exponential_backoff", max_retry_count="-1", minimum_interval="00:00:05",
          maximum_interval="00:05:00")
@bp.event_hub_message_trigger(arg_name="events", connection="IOTHUB_EVENTS_CONNECTION",
                              event_hub_name="%IOTHUB_EVENTS_NAME%", cardinality=func.Cardinality.MANY,
                              consumer_group="%IOTHUB_EVENTS_CONSUMER_GROUP%")
def ingest_iothub_stream(events: list[func.EventHubEvent]) -> None:
    messages = to_messages(events)
    try:
        totals = process_messages(messages)
    except TransientError as exc:
        log.warning("stream batch of %d stopped at a transient failure, it will be retried: %s", len(messages), exc)
        raise
    log.info("stream batch of %d: %s", len(messages), ", ".join(f"{k} {v}" for k, v in totals.items() if v))

