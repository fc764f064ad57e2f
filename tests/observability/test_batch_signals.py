"""Counters and JSON logs for one stream with every outcome: applied, stale, duplicate, filtered, quarantined, retry.

The pipeline is the real one (embedded twin graph, memory state, memory quarantine, the real subscription filter
compiled from config); the only stand-in is a twin store wrapper that fails transiently for one twin, the way the
ADT adapter does when throttling outlasts its retry budget.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.adapters.quarantine.local import MemoryQuarantine
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.errors import Code, TransientError
from shared.filters.config import build_event_filter
from shared.observability import (
    ADT_CALLS,
    BATCHES,
    EGRESS_SENT,
    EVENTS,
    TWIN_WRITES,
    Metrics,
    device_id_of,
    log_batch,
    record_egress,
)
from shared.outcome import Outcome
from shared.settings.app_config import AppConfig
from shared.settings.environment import APP_ROOT
from shared.twins.pipeline import Pipeline
from shared.wiring import embedded_twin_store
from tests.support import event_factory as factory

FOREIGN = factory.TOPIC.replace("FACTORY-HUB", "SOMEONE-ELSES-HUB")


class FlakyTwins:
    """Delegates to the embedded graph, except that every call about one twin fails transiently."""

    def __init__(self, inner: EmbeddedTwinStore, flaky_twin: str) -> None:
        self.inner = inner
        self.flaky_twin = flaky_twin

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.inner, name)

        def call(twin_id: str, *args: Any, **kwargs: Any) -> Any:
            if twin_id == self.flaky_twin:
                raise TransientError(Code.ADT_THROTTLED, f"{name} {twin_id}: throttled past the retry budget")
            return method(twin_id, *args, **kwargs)

        return call


def _stream() -> list[dict[str, Any]]:
    secret = {"temperature": 21.5, "note": "PAYLOAD-MARKER-do-not-log"}
    foreign = factory.telemetry("dev-a", secret, second=1, event_id="q-foreign")
    foreign["topic"] = FOREIGN
    return [
        factory.connection("dev-a", 5, event_id="a-connect-5"),  # applied
        factory.connection("dev-a", 3, connected=False, event_id="a-disconnect-3"),  # stale (older sequence)
        factory.connection("dev-a", 5, event_id="a-connect-5"),  # duplicate (same id, same topic)
        factory.telemetry("ignored-1", secret, second=2, event_id="f-ignored"),  # filtered by the subscription
        foreign,  # quarantined: TOPIC_NOT_ALLOWED
        factory.connection("flaky", 1, event_id="r-flaky"),  # retry: the twin store is throttled for this twin
        factory.telemetry("dev-b", secret, second=3, event_id="b-tel"),  # applied
    ]


@pytest.fixture
def pipeline() -> Pipeline:
    config = AppConfig.from_data({"topics": [factory.TOPIC]})
    catalog = ModelCatalog.load_dir(APP_ROOT / "models")
    event_filter = build_event_filter({"subscription": {
        "advancedFilters": [{"operatorType": "StringNotBeginsWith", "key": "subject", "values": ["devices/ignored-"]}],
    }})
    twins = FlakyTwins(embedded_twin_store(catalog), "flaky")
    return Pipeline(config, twins, MemoryStateStore(), MemoryQuarantine(),  # type: ignore[arg-type]
                    catalog=catalog, event_filter=event_filter)


def test_every_outcome_is_counted_and_logged(pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    events = _stream()
    report = pipeline.process(events)
    assert [r.outcome for r in report.results] == [
        Outcome.APPLIED, Outcome.STALE, Outcome.DUPLICATE, Outcome.FILTERED, Outcome.QUARANTINED, Outcome.RETRY,
        Outcome.APPLIED,
    ]

    metrics = Metrics()
    reader = InMemoryMetricReader()
    metrics.bind_meter(MeterProvider(metric_readers=[reader]).get_meter("twinbridge-test"))
    with caplog.at_level(logging.DEBUG, logger="twinbridge.events"):
        summary = log_batch(report, door="ingest_iothub_events", events=events, metrics=metrics)

    # counters, in-process
    for outcome, expected in [("applied", 2), ("stale", 1), ("duplicate", 1), ("filtered", 1), ("quarantined", 1),
                              ("retry", 1)]:
        assert metrics.total(EVENTS, outcome=outcome) == expected, outcome
    assert metrics.total(EVENTS, outcome="quarantined", code="TOPIC_NOT_ALLOWED") == 1
    assert metrics.total(EVENTS, outcome="retry", code="ADT_THROTTLED") == 1
    assert metrics.total(EVENTS) == len(events)
    assert metrics.total(BATCHES, door="ingest_iothub_events") == 1
    assert metrics.total(TWIN_WRITES) == report.twin_writes > 0

    # the same counters, exported through OpenTelemetry
    exported: dict[tuple[str, tuple[tuple[str, Any], ...]], int] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for point in metric.data.data_points:
                    exported[(metric.name, tuple(sorted(point.attributes.items())))] = point.value
    quarantined_key = (EVENTS, (("code", "TOPIC_NOT_ALLOWED"), ("door", "ingest_iothub_events"),
                                ("outcome", "quarantined")))
    assert exported[quarantined_key] == 1
    assert exported[(EVENTS, (("door", "ingest_iothub_events"), ("outcome", "applied")))] == 2
    assert exported[(TWIN_WRITES, (("door", "ingest_iothub_events"),))] == report.twin_writes

    # logs: one JSON line per event that was not applied (applied ones only at DEBUG), plus the summary
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "twinbridge.events"]
    per_event = [line for line in lines if line["log"] == "twinbridge.event"]
    not_applied = [line for line in per_event if line["outcome"] != "applied"]
    assert [line["event_id"] for line in not_applied] == [
        "a-disconnect-3", "a-connect-5", "f-ignored", "q-foreign", "r-flaky"]
    by_id = {line["event_id"]: line for line in not_applied}
    assert by_id["q-foreign"] == {
        "log": "twinbridge.event", "door": "ingest_iothub_events", "outcome": "quarantined", "event_id": "q-foreign",
        "event_type": "Microsoft.Devices.DeviceTelemetry", "device_id": "dev-a", "twin_id": None,
        "code": "TOPIC_NOT_ALLOWED", "path": "topic"}
    assert by_id["r-flaky"]["twin_id"] == "flaky" and by_id["r-flaky"]["code"] == "ADT_THROTTLED"
    assert by_id["a-disconnect-3"]["outcome"] == "stale" and by_id["a-disconnect-3"]["device_id"] == "dev-a"
    assert by_id["f-ignored"]["reason"].startswith("subscription")
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert {levels[json.dumps(line, separators=(",", ":"))] for line in not_applied if
            line["outcome"] in ("quarantined", "retry")} == {logging.WARNING}
    assert len([line for line in per_event if line["outcome"] == "applied"]) == 2
    [summary_line] = [line for line in lines if line["log"] == "twinbridge.batch"]
    assert summary_line == summary
    assert summary == {"log": "twinbridge.batch", "door": "ingest_iothub_events", "events": 7, "applied": 2,
                       "stale": 1, "duplicate": 1, "filtered": 1, "quarantined": 1, "retry": 1,
                       "twin_writes": report.twin_writes, "codes": {"ADT_THROTTLED": 1, "TOPIC_NOT_ALLOWED": 1}}
    # never the payload
    assert all("PAYLOAD-MARKER" not in r.getMessage() and "21.5" not in r.getMessage() for r in caplog.records
               if r.name == "twinbridge.events")


def test_info_level_hides_applied_events(pipeline: Pipeline, caplog: pytest.LogCaptureFixture) -> None:
    events = _stream()
    report = pipeline.process(events)
    with caplog.at_level(logging.INFO, logger="twinbridge.events"):
        log_batch(report, door="d", events=events, metrics=Metrics())
    outcomes = [json.loads(r.getMessage()).get("outcome") for r in caplog.records if r.name == "twinbridge.events"]
    assert "applied" not in outcomes and len(outcomes) == 6  # 5 non-applied lines + the summary (no outcome key)


def test_device_id_in_both_schemas_and_bounded() -> None:
    connection = factory.connection("dev-x", 1)
    assert device_id_of(connection) == "dev-x"
    assert device_id_of(factory.to_cloudevent(factory.telemetry("dev-y", {"t": 1}))) == "dev-y"
    assert device_id_of({"subject": "devices/dev-z/modules/m1", "data": None}) == "dev-z"
    assert device_id_of({"subject": "devices/" + "x" * 10_000}) == "x" * 128
    assert device_id_of("not an event") is None


def test_counters_for_adt_and_egress_are_separate_series() -> None:
    metrics = Metrics()
    record_egress("eventhub", 3, metrics=metrics)
    record_egress("servicebus", metrics=metrics)
    metrics.add(ADT_CALLS, 2)
    metrics.add(ADT_CALLS, 0)
    assert metrics.total(EGRESS_SENT) == 4 and metrics.total(EGRESS_SENT, sink="eventhub") == 3
    assert metrics.snapshot() == {"twinbridge.adt.calls": 2, "twinbridge.egress.sent{sink=eventhub}": 3,
                                  "twinbridge.egress.sent{sink=servicebus}": 1}
    metrics.reset()
    assert metrics.snapshot() == {}
