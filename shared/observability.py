"""Operating signals: one JSON log line per event that was not applied, counters, OpenTelemetry when configured.

* ``run_batch(door, events, process)`` is the one call every door makes, ingest and egress alike: it runs the
  door's batch (``Pipeline.process``, ``EgressRouter.process``…) and then ``log_batch`` counts every outcome and
  writes one JSON line per non-applied event (event id, type, device id, twin id, outcome, error code and field
  path — never the payload, never an error message that could quote it) and one summary line, once per batch.
* ``record_egress(sink, n)`` is called by the egress router where a sink accepted messages.
* ``METRICS`` holds the process-wide counters (``Metrics``). Each series is a metric name plus attributes, e.g.
  ``twinbridge.events{outcome=quarantined, code=TOPIC_NOT_ALLOWED}``. They are always kept in-process (tests, the
  CLI, the local host read them) and also forwarded to OpenTelemetry counters once a meter is bound.
* ``configure_telemetry()`` wires OpenTelemetry to Application Insights through ``azure-monitor-opentelemetry``
  only when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set (``configure_azure_monitor`` raises without one), and
  does nothing otherwise. The import is lazy, so this module works where azure.monitor is not installed.

Log lines are JSON text in the message itself, so Application Insights ``traces`` can be queried with
``parse_json(message)`` whatever carried them (the Functions host, or the OpenTelemetry log exporter).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol, TypeVar

import orjson

from shared.outcome import Outcome

__all__ = [
    "ADT_CALLS",
    "ADT_RETRIED",
    "ADT_THROTTLED",
    "BATCHES",
    "EGRESS_SENT",
    "EVENTS",
    "METRICS",
    "TWIN_WRITES",
    "Metrics",
    "configure_telemetry",
    "device_id_of",
    "log_batch",
    "record_egress",
    "run_batch",
]

# Metric names (OpenTelemetry instrument names; attributes in braces)
EVENTS: Final = "twinbridge.events"  # {outcome, code?, door}
BATCHES: Final = "twinbridge.batches"  # {door}
TWIN_WRITES: Final = "twinbridge.twin_writes"  # {door}
ADT_CALLS: Final = "twinbridge.adt.calls"  # logical ADT requests (one per SDK call, however many attempts)
ADT_THROTTLED: Final = "twinbridge.adt.throttled"  # 429 answers, including those the SDK then retried
ADT_RETRIED: Final = "twinbridge.adt.retried"  # extra attempts made by the azure-core retry policy
EGRESS_SENT: Final = "twinbridge.egress.sent"  # {sink}: messages accepted by an egress sink

_DESCRIPTIONS: Final = {
    EVENTS: "IoT Hub events by outcome (applied, stale, duplicate, filtered, quarantined, retry) and error code",
    BATCHES: "batches processed by a door",
    TWIN_WRITES: "twin creates, patches and deletes sent to the twin store",
    ADT_CALLS: "Azure Digital Twins requests (logical calls)",
    ADT_THROTTLED: "Azure Digital Twins 429 responses",
    ADT_RETRIED: "Azure Digital Twins request attempts beyond the first (azure-core retry policy)",
    EGRESS_SENT: "messages sent to egress sinks",
}

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]

events_log = logging.getLogger("twinbridge.events")
log = logging.getLogger("twinbridge.observability")


class Metrics:
    """Thread-safe counters (the Functions Python worker runs sync invocations on a thread pool)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[SeriesKey, int] = {}
        self._meter: Any = None
        self._instruments: dict[str, Any] = {}

    def add(self, name: str, amount: int = 1, /, **attributes: str) -> None:
        if amount <= 0:
            return
        key = (name, tuple(sorted(attributes.items())))
        with self._lock:
            self._series[key] = self._series.get(key, 0) + amount
            instrument = self._instrument(name) if self._meter is not None else None
        if instrument is not None:
            instrument.add(amount, attributes)

    def total(self, name: str, **attributes: str) -> int:
        """Sum of every series of ``name`` whose attributes include ``attributes``."""
        wanted = set(attributes.items())
        with self._lock:
            return sum(v for (n, attrs), v in self._series.items() if n == name and wanted <= set(attrs))

    def snapshot(self) -> dict[str, int]:
        """Every series as ``name{k=v,...}`` → value, sorted (for printing and assertions)."""
        with self._lock:
            items = sorted(self._series.items())
        return {(f"{n}{{{','.join(f'{k}={v}' for k, v in attrs)}}}" if attrs else n): v for (n, attrs), v in items}

    def reset(self) -> None:
        with self._lock:
            self._series.clear()

    def bind_meter(self, meter: Any) -> None:
        """Forward every later ``add`` to OpenTelemetry counters created on ``meter`` (an ``opentelemetry`` Meter)."""
        with self._lock:
            self._meter = meter
            self._instruments.clear()

    def _instrument(self, name: str) -> Any:
        instrument = self._instruments.get(name)
        if instrument is None:
            instrument = self._meter.create_counter(name, unit="1", description=_DESCRIPTIONS.get(name, ""))
            self._instruments[name] = instrument
        return instrument


METRICS: Final = Metrics()


def record_egress(sink: str, count: int = 1, metrics: Metrics | None = None) -> None:
    """For egress sinks: ``count`` messages were accepted by ``sink`` (eventhub, servicebus, eventgrid, file…)."""
    (metrics or METRICS).add(EGRESS_SENT, count, sink=sink)


# ---------------------------------------------------------------------------------------------------------------
# batch logging

_MAX_ID = 128  # ids are logged, not the data around them; bound them so a hostile id cannot flood the log


def _short(value: Any) -> str | None:
    return value[:_MAX_ID] if isinstance(value, str) and value else None


def device_id_of(raw: Any) -> str | None:
    """The device id of a raw IoT Hub event in either schema (``data.deviceId``, else ``devices/{id}`` subject)."""
    if not isinstance(raw, Mapping):
        return None
    data = raw.get("data")
    if isinstance(data, Mapping):
        device = _short(data.get("deviceId"))
        if device:
            return device
        system = data.get("systemProperties")
        if isinstance(system, Mapping):
            device = _short(system.get("iothub-connection-device-id"))
            if device:
                return device
    subject = raw.get("subject")
    if isinstance(subject, str) and subject.startswith("devices/"):
        return _short(subject[len("devices/"):].split("/", 1)[0])
    return None


class EventOutcome(Protocol):
    """One event's result as a door reports it (shared.twins.pipeline.EventResult, the egress router's)."""

    @property
    def index(self) -> int: ...
    @property
    def event_id(self) -> str | None: ...
    @property
    def event_type(self) -> str | None: ...
    @property
    def twin_id(self) -> str | None: ...
    @property
    def outcome(self) -> Outcome: ...
    @property
    def code(self) -> str | None: ...
    @property
    def path(self) -> str: ...
    @property
    def message(self) -> str: ...


class BatchOutcome(Protocol):
    """What a door's batch produced: one result per event, and the twin writes it made."""

    @property
    def results(self) -> Sequence[EventOutcome]: ...
    @property
    def twin_writes(self) -> int: ...
    def counts(self) -> dict[str, int]: ...
    def codes(self) -> dict[str, int]: ...


Report = TypeVar("Report", bound=BatchOutcome)


def run_batch(door: str, events: Sequence[Any], process: Callable[[Sequence[Any]], Report], *,
              logger: logging.Logger | None = None, metrics: Metrics | None = None,
              **summary: int) -> Report:
    """Run one door's batch and emit its signals once: ``twinbridge.batches``, ``twinbridge.events`` per event,
    ``twinbridge.twin_writes``, the per-event lines and the summary (``summary`` adds door-specific counts). Raising
    for redelivery stays with the door, after this (the webhook answers with a status code instead)."""
    report = process(events)
    log_batch(report, door=door, events=events, logger=logger, metrics=metrics, **summary)
    return report


def _event_line(result: EventOutcome, door: str, raw: Any) -> dict[str, Any]:
    line: dict[str, Any] = {
        "log": "twinbridge.event",
        "door": door,
        "outcome": result.outcome.value,
        "event_id": _short(result.event_id),
        "event_type": _short(result.event_type),
        "device_id": device_id_of(raw),
        "twin_id": _short(result.twin_id),
    }
    if result.code:
        line["code"] = result.code
    if result.path:
        line["path"] = result.path[:_MAX_ID]
    if result.outcome in (Outcome.FILTERED, Outcome.RETRY) and result.message:
        # Our own words (which filter rejected it, which ADT call gave up): no input values in them.
        line["reason"] = result.message[:200]
    return line


_LEVELS: Final = {
    Outcome.APPLIED: logging.DEBUG,
    Outcome.STALE: logging.INFO,
    Outcome.DUPLICATE: logging.INFO,
    Outcome.FILTERED: logging.INFO,
    Outcome.QUARANTINED: logging.WARNING,
    Outcome.RETRY: logging.WARNING,
}


def log_batch(report: BatchOutcome, *, door: str, events: Sequence[Any] | None = None,
              logger: logging.Logger | None = None, metrics: Metrics | None = None, **extra: int) -> dict[str, Any]:
    """Count and log one processed batch; returns the summary line (also logged). ``events`` = the raw batch."""
    logger = logger or events_log
    metrics = metrics or METRICS
    for result in report.results:
        attributes = {"outcome": result.outcome.value, "door": door}
        if result.code:
            attributes["code"] = result.code
        metrics.add(EVENTS, **attributes)
        level = _LEVELS[result.outcome]
        if logger.isEnabledFor(level):
            raw = events[result.index] if events is not None and result.index < len(events) else None
            logger.log(level, orjson.dumps(_event_line(result, door, raw)).decode())
    metrics.add(BATCHES, door=door)
    metrics.add(TWIN_WRITES, report.twin_writes, door=door)
    summary: dict[str, Any] = {"log": "twinbridge.batch", "door": door, "events": len(report.results),
                               **report.counts(), "twin_writes": report.twin_writes, **extra}
    codes = report.codes()
    if codes:
        summary["codes"] = dict(sorted(codes.items()))
    logger.info(orjson.dumps(summary).decode())
    return summary


# ---------------------------------------------------------------------------------------------------------------
# OpenTelemetry → Application Insights

_configured = False
_configure_lock = threading.Lock()


def _azure_monitor() -> Callable[..., None]:
    from azure.monitor.opentelemetry import configure_azure_monitor

    return configure_azure_monitor


def _credential(auth: str) -> Any:
    """``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` = ``Authorization=AAD[;ClientId=<user-assigned id>]``."""
    parts = dict(p.split("=", 1) for p in auth.split(";") if "=" in p)
    if parts.get("Authorization", "").upper() != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    client_id = parts.get("ClientId")
    return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()


def configure_telemetry(env: Mapping[str, str] | None = None, *,
                        configure: Callable[..., None] | None = None, metrics: Metrics | None = None) -> bool:
    """Send traces and metrics to Application Insights when its connection string is set; True when wired.

    Logs are left to the Functions host, which already forwards the worker's logging records to Application
    Insights: exporting them here as well would store every line twice (``disable_logging``). With Entra-only
    ingestion (``disableLocalAuth`` on the component) the exporter authenticates with the managed identity.
    Idempotent; a failure to configure is logged and never stops the app.
    """
    global _configured
    env = os.environ if env is None else env
    connection_string = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip()
    if not connection_string:
        return False
    with _configure_lock:
        if _configured:
            return True
        try:
            kwargs: dict[str, Any] = {"connection_string": connection_string, "disable_logging": True}
            credential = _credential(env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", ""))
            if credential is not None:
                kwargs["credential"] = credential
            (configure or _azure_monitor())(**kwargs)
            from opentelemetry import metrics as otel_metrics

            (metrics or METRICS).bind_meter(otel_metrics.get_meter("twinbridge"))
        except Exception as exc:  # telemetry must never take the app down
            log.warning("OpenTelemetry not configured: %s: %s", type(exc).__name__, exc)
            return False
        _configured = True
        return True


def _reset_for_tests() -> None:
    global _configured
    with _configure_lock:
        _configured = False
