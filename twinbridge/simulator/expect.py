"""What the twins must say after a run: the devices' last reports among the events the endpoint accepted.

Independent of the app's freshness code: the fleet records each event's effect when it makes it, and the latest
report wins by the device's own counters (sequence number for connection, enqueued time for each telemetry field).
Events that were filtered out, dead-lettered or faulty (not JSON) are not expected on any twin.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from twinbridge.simulator.fleet import Effect


@dataclass
class ExpectedTwin:
    device_id: str
    sequence: int = -1
    connected: bool | None = None
    values: dict[str, tuple[datetime, Any]] = field(default_factory=dict)

    def properties(self, connected: str = "Connected", disconnected: str = "Disconnected") -> dict[str, Any]:
        props = {name: value for name, (_, value) in self.values.items()}
        if self.connected is not None:
            props["connectionState"] = connected if self.connected else disconnected
        return props


@dataclass(frozen=True, slots=True)
class Mismatch:
    twin_id: str
    field: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.twin_id}.{self.field}: expected {self.expected!r}, twin has {self.actual!r}"


class Expectation:
    def __init__(self) -> None:
        self.twins: dict[str, ExpectedTwin] = {}
        self.deleted: set[str] = set()
        self._seen: set[str] = set()

    def observe(self, event_id: str, effect: Effect) -> None:
        """An event the endpoint accepted (2xx). Duplicates change nothing."""
        if event_id in self._seen or effect.kind == "faulty":
            return
        self._seen.add(event_id)
        if effect.kind == "deleted" or effect.device_id in self.deleted:
            # A deleted device sends nothing more: anything of it still arriving is older than its deletion.
            self.deleted.add(effect.device_id)
            self.twins.pop(effect.device_id, None)
            return
        twin = self.twins.setdefault(effect.device_id, ExpectedTwin(effect.device_id))
        if effect.kind == "connection" and effect.sequence > twin.sequence:
            twin.sequence, twin.connected = effect.sequence, effect.connected
        elif effect.kind == "telemetry" and effect.enqueued is not None:
            for name, value in effect.values.items():
                current = twin.values.get(name)
                if current is None or effect.enqueued > current[0]:
                    twin.values[name] = (effect.enqueued, value)

    def accepted(self, event_id: str) -> bool:
        return event_id in self._seen

    def compare(self, twins: Iterable[dict[str, Any]]) -> list[Mismatch]:
        """Every difference between the expected twins and ``twins`` (ADT-shaped documents with ``$dtId``)."""
        actual = {str(t["$dtId"]): t for t in twins}
        mismatches: list[Mismatch] = []
        for twin_id, expected in sorted(self.twins.items()):
            twin = actual.get(twin_id)
            if twin is None:
                mismatches.append(Mismatch(twin_id, "$dtId", "a twin", None))
                continue
            for name, value in sorted(expected.properties().items()):
                if twin.get(name) != value:
                    mismatches.append(Mismatch(twin_id, name, value, twin.get(name)))
        for twin_id in sorted(set(actual) - set(self.twins)):
            mismatches.append(Mismatch(twin_id, "$dtId", None, "an unexpected twin"))
        return mismatches
