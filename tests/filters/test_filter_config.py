"""shared.filters.config: the ingest pipeline's entry point."""

from __future__ import annotations

import pytest

from shared.filters.config import build_event_filter
from shared.filters.event_grid import FilterError
from shared.filters.iothub_query import QuerySyntaxError

TELEMETRY = {
    "id": "t1", "topic": "/hub", "subject": "devices/d1", "eventType": "Microsoft.Devices.DeviceTelemetry",
    "dataVersion": "", "data": {
        "body": {"temperature": 25}, "properties": {"processingPath": "cold"},
        "systemProperties": {"iothub-content-type": "application/json", "iothub-content-encoding": "utf-8"}},
}
CONNECTED = {"id": "c1", "topic": "/hub", "subject": "devices/d1", "eventType": "Microsoft.Devices.DeviceConnected",
             "dataVersion": "1", "data": {"deviceId": "d1"}}


def test_empty_sections_give_none() -> None:
    assert build_event_filter(None) is None
    assert build_event_filter({}) is None
    assert build_event_filter({"subscription": None, "routing_query": ""}) is None


def test_routing_query_applies_to_telemetry_only() -> None:
    f = build_event_filter({"routing_query": "$body.temperature > 30"})
    assert f is not None
    assert f.check(TELEMETRY) == "routing_query"
    assert f.check(CONNECTED) is None
    hot = {**TELEMETRY, "data": {**TELEMETRY["data"], "body": {"temperature": 31}}}
    assert f.check(hot) is None
    ce = {"specversion": "1.0", "type": "Microsoft.Devices.DeviceTelemetry", "id": "x", "source": "/hub",
          "data": TELEMETRY["data"]}
    assert f.check(ce) == "routing_query"
    assert f(TELEMETRY) == "routing_query"  # usable as a plain callable by the intake
    assert f.check({**TELEMETRY, "data": "not an object"}) == "routing_query"


def test_subscription_then_query() -> None:
    f = build_event_filter({
        "subscription": {"includedEventTypes": ["Microsoft.Devices.DeviceTelemetry"],
                         "advancedFilters": [{"operatorType": "StringIn", "key": "data.properties.processingPath",
                                              "values": ["hot", "cold"]}]},
        "routing_query": "processingPath = 'hot'",
    })
    assert f is not None
    assert f.check(CONNECTED) == "subscription: includedEventTypes"
    assert f.check(TELEMETRY) == "routing_query"
    hot = {**TELEMETRY, "data": {**TELEMETRY["data"], "properties": {"ProcessingPath": "hot"}}}
    assert f.check(hot) == "subscription: advancedFilters[0] StringIn data.properties.processingPath"


def test_errors_name_the_config_path() -> None:
    bad = {"advancedFilters": [{"operatorType": "IsNotNull", "key": f"data.k{i}"} for i in range(3)]
           + [{"operatorType": "NumberIn", "key": "data.x", "values": ["a"]}]}
    with pytest.raises(FilterError, match=r"^filters\.subscription\.advancedFilters\[3\]\.values\[0\]: NumberIn"):
        build_event_filter({"subscription": bad})
    with pytest.raises(QuerySyntaxError, match=r"^filters\.routing_query: .* at position 2$") as exc:
        build_event_filter({"routing_query": "a IN ('x')"})
    assert exc.value.position == 2
    with pytest.raises(FilterError, match=r"filters: unknown key\(s\) routingQuery"):
        build_event_filter({"routingQuery": "true"})
    with pytest.raises(FilterError, match=r"filters\.routing_query: expected a string"):
        build_event_filter({"routing_query": 5})
    with pytest.raises(FilterError, match="filters: expected a mapping"):
        build_event_filter(["x"])  # type: ignore[arg-type]
