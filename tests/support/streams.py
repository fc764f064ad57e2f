"""A deterministic, realistic stream for a small fleet: what each device does, in the order it happened."""

from __future__ import annotations

import random
from typing import Any

from tests.support import event_factory as factory


def fleet_stream(devices: int = 8, steps: int = 12, seed: int = 1) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    events: list[dict[str, Any]] = []
    second = 0.0
    sequence = {f"dev-{i:03d}": 0 for i in range(devices)}
    for device in sequence:
        events.append(factory.lifecycle(device, second=second))
        second += 0.5
    for step in range(steps):
        for device in sequence:
            second += 0.1
            roll = rnd.random()
            if roll < 0.25:
                sequence[device] += rnd.randint(1, 3)
                events.append(factory.connection(device, sequence[device], connected=rnd.random() < 0.6,
                                                 second=second))
            else:
                body = {"temperature": round(rnd.uniform(15, 30), 2), "humidity": rnd.randint(20, 80)}
                if rnd.random() < 0.3:
                    body["batteryLevel"] = rnd.randint(1, 100)
                encoding = "base64" if rnd.random() < 0.1 else "json"
                events.append(factory.telemetry(device, body, second=second, encoding=encoding,
                                                event_id=f"tel-{device}-{step}"))
    events.append(factory.lifecycle("dev-000", created=False, second=second + 1, version=2))
    return events
