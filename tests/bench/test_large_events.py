"""The bench's large-event figure (twinbridge/bench/large_events.py): real sizes, a real host, a measured peak."""

from __future__ import annotations

import orjson
import pytest

from twinbridge.bench.large_events import _ID_MARK, large_event_rss, large_event_template


def test_the_template_is_the_size_asked_for_and_a_telemetry_event():
    template = large_event_template(950_000)
    assert abs(len(template) - 950_000) < 2_000
    event = orjson.loads(template.replace(_ID_MARK.encode(), b"x"))
    assert event["eventType"] == "Microsoft.Devices.DeviceTelemetry" and event["data"]["body"]["temperature"]


@pytest.mark.integration
def test_a_short_run_posts_every_event_and_reports_a_peak():
    figures = large_event_rss(events=30, event_kb=300)
    assert figures["large_http_statuses"] == {"202": 30}
    assert 20 < figures["large_peak_rss_mb"] < 300
    assert figures["large_idle_rss_mb"] <= figures["large_peak_rss_mb"]
