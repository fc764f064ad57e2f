"""Microsoft's documented sample events (tests/events/documented/, sources in its README) and what twinbridge
does with each (expected.json): shared by the door tests and the real-runtime tier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from shared.twins.freshness import CONNECTION
from shared.wiring import App
from tests.functions.helpers import user_twins

CORPUS = Path(__file__).resolve().parents[1] / "events" / "documented"
EXPECTED: dict[str, dict[str, str]] = {k: v for k, v in orjson.loads((CORPUS / "expected.json").read_bytes()).items()
                                       if not k.startswith("_")}
# The samples' topic, placeholders and all: the allow-list names it as it is.
DOC_TOPIC = ("/SUBSCRIPTIONS/<subscription ID>/RESOURCEGROUPS/<resource group name>/PROVIDERS/MICROSOFT.DEVICES"
             "/IOTHUBS/<hub name>")
DOC_SEQUENCE = int("000000000000000001D4132452F67CE200000002000000000000000000000001", 16)
SAMPLES = sorted((schema.name, file.stem) for schema in CORPUS.iterdir() if schema.is_dir()
                 for file in schema.glob("*.json"))


def sample(schema: str, name: str) -> dict[str, Any]:
    events = orjson.loads((CORPUS / schema / f"{name}.json").read_bytes())
    assert isinstance(events, list) and len(events) == 1  # documented as a one-event array
    event: dict[str, Any] = events[0]
    return event


def check(app: App, name: str) -> None:
    expected = EXPECTED[name]
    records = list(app.quarantine)  # type: ignore[call-overload]
    if expected["outcome"] == "quarantined":
        assert [r.code for r in records] == [expected["code"]]
        return
    assert records == []
    twins = user_twins(app.twins)
    assert expected["twin"] in twins
    if name == "device_connected":
        assert twins[expected["twin"]]["connectionState"] == "Connected"
        loaded = app.state.load(expected["twin"])
        assert loaded is not None and loaded[0].marks[CONNECTION].order == (DOC_SEQUENCE,)
