"""Loader for the captured sample events in tests/events/ (hand-written from the documented payloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

EVENTS = Path(__file__).resolve().parent.parent / "events"
SAMPLE_TOPIC = ("/SUBSCRIPTIONS/BDF55CDD-8DAB-4CF4-9B2F-C21E8A780472/RESOURCEGROUPS/EGTESTRG"
                "/PROVIDERS/MICROSOFT.DEVICES/IOTHUBS/EGTESTHUB1")
SAMPLE_NAMES = ("device_created", "device_deleted", "device_connected", "device_disconnected", "device_telemetry",
                "device_telemetry_base64", "module_connected")


def load_event(name: str, schema: str = "eventgrid") -> dict[str, Any]:
    """tests/events/<schema>/<name>.json, a fresh copy each call."""
    data: dict[str, Any] = orjson.loads((EVENTS / schema / f"{name}.json").read_bytes())
    return data


def invalid_cases() -> list[tuple[str, str, Any]]:
    """(name, expected error code, event) for every file in tests/events/invalid/."""
    cases = []
    for file in sorted((EVENTS / "invalid").glob("*.json")):
        case = orjson.loads(file.read_bytes())
        cases.append((file.stem, case["expected_code"], case["event"]))
    return cases
