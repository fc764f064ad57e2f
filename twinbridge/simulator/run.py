"""One simulation run: a fleet, a publisher, a rate, a progress line, a summary. Used by ``simulate`` and ``demo``."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from shared.filters.event_grid import SubscriptionFilter
from twinbridge.simulator.expect import Expectation
from twinbridge.simulator.fleet import Fleet
from twinbridge.simulator.publisher import (
    Chaos,
    LocalEventGridPublisher,
    PublisherStats,
    RetryPolicy,
    load_subscription,
)


@dataclass
class SimulationOptions:
    target: str
    devices: int = 10
    messages: int | None = None
    duration: float | None = None
    rate: float = 50.0
    schema: str = "eventgrid"
    subscription: str | None = None
    batch: int | None = None
    chaos: bool = False
    seed: int | None = None
    faulty: float = 0.0
    time_scale: float = 1.0
    deadletter_dir: str | None = ".run/deadletter"
    drain_timeout: float = 60.0
    concurrency: int = 4
    headers: dict[str, str] = field(default_factory=dict)
    retire: int = 0  # devices deleted at the end of the run (DeviceDeleted), their twins must then be gone


@dataclass
class SimulationResult:
    fleet: Fleet
    expectation: Expectation
    stats: PublisherStats
    elapsed: float
    drained: bool
    subscription_name: str

    def summary_lines(self) -> list[str]:
        s = self.stats
        statuses = ", ".join(f"{k}×{v}" for k, v in sorted(s.statuses.items()))
        kinds: dict[str, int] = {}
        for effect in self.fleet.effects.values():
            kinds[effect.kind] = kinds.get(effect.kind, 0) + 1
        return [
            f"simulated {len(self.fleet.devices)} devices, {s.published} events in {self.elapsed:.1f} s "
            f"({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})",
            f"subscription '{self.subscription_name}': {s.filtered} filtered out, {s.delivered} delivered in "
            f"{s.posts} POSTs ({statuses or 'none'})",
            f"chaos: {s.duplicated} duplicated, {s.reordered} reordered windows, {s.delayed} delayed; "
            f"retries {s.retries}, dead-lettered {s.dead_lettered}, dropped {s.dropped}"
            + ("" if self.drained else "; NOT DRAINED (deliveries still pending at the timeout)"),
        ]


class Progress:
    """A one-line progress bar on stderr (a line every few seconds when stderr is not a terminal)."""

    def __init__(self, total: int, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._last = 0.0

    def update(self, done: int, stats: PublisherStats, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < (0.1 if self.tty else 5.0)):
            return
        self._last = now
        width = 30
        filled = int(width * min(done, self.total) / self.total)
        line = (f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} events  delivered {stats.delivered}"
                f"  retries {stats.retries}  dead-lettered {stats.dead_lettered}")
        if self.tty:
            self.stream.write("\r" + line)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def build_publisher(options: SimulationOptions, expectation: Expectation, fleet: Fleet) -> LocalEventGridPublisher:
    subscription: dict[str, Any] = load_subscription(options.subscription) if options.subscription else {}
    destination = (subscription.get("destination") or {}).get("properties") or {}
    retry = subscription.get("retryPolicy") or {}
    schema = options.schema
    if subscription.get("eventDeliverySchema", "").lower().startswith("cloudevent"):
        schema = "cloudevents"
    filter_dict = subscription.get("filter")
    policy = RetryPolicy(max_attempts=int(retry.get("maxDeliveryAttempts", 30)),
                         ttl_minutes=float(retry.get("eventTimeToLiveInMinutes", 1440)), time_scale=options.time_scale)

    def delivered(ids: list[str]) -> None:
        for event_id in ids:
            effect = fleet.effects.get(event_id)
            if effect is not None:
                expectation.observe(event_id, effect)

    return LocalEventGridPublisher(
        options.target, subscription_name=str(subscription.get("name") or "twinbridge-local"), schema=schema,
        subscription_filter=SubscriptionFilter.from_dict(filter_dict) if filter_dict else None,
        max_events_per_batch=options.batch or int(destination.get("maxEventsPerBatch", 1)),
        preferred_batch_kb=int(destination.get("preferredBatchSizeInKilobytes", 64)), policy=policy,
        deadletter_dir=Path(options.deadletter_dir) if options.deadletter_dir else None,
        chaos=Chaos() if options.chaos else None, seed=options.seed, concurrency=options.concurrency,
        on_delivered=delivered, headers=options.headers,
    )


def run_simulation(options: SimulationOptions, progress: bool = True) -> SimulationResult:
    fleet = Fleet(options.devices, seed=options.seed, faulty=options.faulty)
    expectation = Expectation()
    publisher = build_publisher(options, expectation, fleet)
    total = options.messages if options.messages is not None else int((options.duration or 10.0) * options.rate)
    total = max(total, options.devices)  # every device at least announces itself
    bar = Progress(total, enabled=progress)
    started = time.monotonic()
    try:
        while fleet.generated < total:
            owed = min(total, int((time.monotonic() - started) * options.rate) + 1) - fleet.generated
            if owed > 0:
                publisher.publish(fleet.events(owed))
            publisher.pump()
            bar.update(fleet.generated, publisher.stats)
            time.sleep(0.005)
        if options.retire:
            publisher.publish(fleet.retire(options.retire))
        drained = publisher.drain(options.drain_timeout, tick=lambda: bar.update(fleet.generated, publisher.stats))
        bar.update(fleet.generated, publisher.stats, force=True)
        bar.finish()
    finally:
        publisher.close()
    return SimulationResult(fleet, expectation, publisher.stats, time.monotonic() - started, drained,
                            publisher.subscription_name)
