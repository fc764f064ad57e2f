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


@pytest.mark.integration
def test_the_peak_is_the_hosts_own_not_inherited_from_a_large_parent():
    """Linux keeps a parent's RSS high-water mark across fork+exec (wait4's ru_maxrss): started from a 400 MB
    process, the host used to report 400+ MB. The peak is the host's own VmHWM, read before it exits."""
    ballast = bytearray(400 * 1024 * 1024)
    ballast[::4096] = b"x" * len(ballast[::4096])  # touch every page: resident, not just reserved
    figures = large_event_rss(events=3, event_kb=100)
    assert figures["large_peak_rss_mb"] is not None and figures["large_peak_rss_mb"] < 300
    del ballast
