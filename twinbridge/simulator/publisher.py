"""A local Event Grid publisher: what an event subscription does between IoT Hub and a webhook.

Applies the subscription filter (``shared.filters.event_grid.SubscriptionFilter``), converts to the delivery schema
(Event Grid
or CloudEvents 1.0), batches (``maxEventsPerBatch``, ``preferredBatchSizeInKilobytes``; a larger event goes alone),
delivers with Event Grid's headers, retries on Event Grid's schedule (10 s, 30 s, 1 min, 5 min, 10 min, 30 min, 1 h,
3 h, 6 h, then every 12 h; ``time_scale`` compresses it), never retries 400/401/403/413, and dead-letters to a local
folder the way Event Grid writes dead-letter blobs. ``Chaos`` adds duplicates, reordering and delays — all things
Event Grid is allowed to do (at-least-once, no ordering).
"""

from __future__ import annotations

import base64
import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import requests
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent

from shared.filters.event_grid import SubscriptionFilter

SCHEDULE = (10.0, 30.0, 60.0, 300.0, 600.0, 1800.0, 3600.0, 10800.0, 21600.0)
EVERY_LATER = 43200.0
SUCCESS = frozenset({200, 201, 202, 203, 204})
NOT_RETRIED = frozenset({400, 401, 403, 413})
# Minimum wait before the next attempt for some answers (Event Grid docs, "delivery and retry").
MIN_WAIT = {408: 120.0, 503: 30.0}
OUTCOMES = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound", 408: "TimedOut",
            413: "RequestEntityTooLarge", 429: "Busy", 503: "Busy"}


def event_to_wire(event: EventGridEvent, schema: str) -> dict[str, Any]:
    """The event as the subscription delivers it: Event Grid schema, or converted to CloudEvents 1.0 as Event Grid
    converts IoT Hub's events for a ``CloudEventSchemaV1_0`` subscription."""
    if schema == "eventgrid":
        wire: dict[str, Any] = dict(event.serialize())
        wire["metadataVersion"] = "1"
        return wire
    cloud: CloudEvent[Any] = CloudEvent(source=str(event.topic), type=event.event_type, data=event.data,
                                        subject=event.subject, id=event.id, time=event.event_time)
    return cloud_event_to_wire(cloud)


def cloud_event_to_wire(cloud: CloudEvent[Any]) -> dict[str, Any]:
    wire: dict[str, Any] = {"specversion": cloud.specversion, "id": cloud.id, "source": cloud.source,
                            "type": cloud.type}
    for name in ("subject", "datacontenttype", "dataschema"):
        if getattr(cloud, name):
            wire[name] = getattr(cloud, name)
    if cloud.time is not None:
        wire["time"] = cloud.time.astimezone(UTC).isoformat().replace("+00:00", "Z")
    wire.update(cloud.extensions or {})
    if isinstance(cloud.data, bytes):
        wire["data_base64"] = base64.b64encode(cloud.data).decode()
    elif cloud.data is not None:
        wire["data"] = cloud.data
    return wire


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 30  # maxDeliveryAttempts, 1–30
    ttl_minutes: float = 1440.0  # eventTimeToLiveInMinutes, 1–1440
    time_scale: float = 1.0  # 0.01: 10 s → 0.1 s (tests, the demo)
    jitter: float = 0.1

    def wait(self, failed_attempts: int, status: int | None, rng: random.Random) -> float:
        step = SCHEDULE[failed_attempts - 1] if failed_attempts <= len(SCHEDULE) else EVERY_LATER
        step = max(step, MIN_WAIT.get(status or 0, 0.0))
        return step * self.time_scale * (1 + rng.uniform(-self.jitter, self.jitter))


@dataclass(frozen=True)
class Chaos:
    duplicate: float = 0.05  # share of deliveries also sent a second time, later
    reorder: float = 0.3  # share of batch windows shuffled before batching
    delay: float = 0.1  # share of deliveries held back
    max_delay: float = 1.5  # seconds


@dataclass
class ScheduledDelivery:
    events: list[dict[str, Any]]
    due: float
    publish_time: str
    created: float
    attempts: int = 0
    last_status: int | None = None
    last_outcome: str = ""
    last_attempt_time: str = ""
    copy: bool = False

    @property
    def ids(self) -> list[str]:
        return [str(e["id"]) for e in self.events]


@dataclass
class PublisherStats:
    published: int = 0
    filtered: int = 0
    delivered: int = 0  # events in 2xx deliveries (duplicates included)
    posts: int = 0
    failed_attempts: int = 0
    retries: int = 0
    dead_lettered: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    delayed: int = 0
    statuses: Counter[str] = field(default_factory=Counter)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def load_subscription(path: str | Path) -> dict[str, Any]:
    """An event subscription file (ARM shape with ``properties``, or flat), or a bare filter object."""
    data = orjson.loads(Path(path).read_bytes())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    props = data.get("properties", data)
    if "filter" not in props and any(k in props for k in ("includedEventTypes", "advancedFilters",
                                                           "subjectBeginsWith", "subjectEndsWith")):
        return {"name": Path(path).stem, "filter": props}
    return {"name": data.get("name") or Path(path).stem, **props}


class LocalEventGridPublisher:
    def __init__(self, endpoint: str, *, subscription_name: str = "twinbridge-local", schema: str = "eventgrid",
                 subscription_filter: SubscriptionFilter | None = None, max_events_per_batch: int = 1,
                 preferred_batch_kb: int = 64, policy: RetryPolicy | None = None,
                 deadletter_dir: str | Path | None = None, chaos: Chaos | None = None, seed: int | None = None,
                 concurrency: int = 4, timeout: float = 30.0,
                 on_delivered: Callable[[list[str]], None] | None = None,
                 headers: dict[str, str] | None = None, linger: float = 0.05) -> None:
        if schema not in ("eventgrid", "cloudevents"):
            raise ValueError(f"unknown schema {schema!r}")
        self.endpoint = endpoint
        self.subscription_name = subscription_name
        self.schema = schema
        self.filter = subscription_filter
        self.max_batch = max(1, max_events_per_batch)
        self.max_batch_bytes = preferred_batch_kb * 1024
        self.policy = policy or RetryPolicy()
        self.deadletter_dir = Path(deadletter_dir) if deadletter_dir else None
        self.chaos = chaos
        self.rng = random.Random(seed)
        self.timeout = timeout
        self.on_delivered = on_delivered
        self.extra_headers = headers or {}
        self.linger = linger  # how long a partial batch waits for company (Event Grid batches what is at hand)
        self._oldest_pending = 0.0
        self.stats = PublisherStats()
        self._pending: list[dict[str, Any]] = []
        self._scheduled: list[ScheduledDelivery] = []
        self._in_flight: dict[Future[tuple[int | None, str]], ScheduledDelivery] = {}
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="deliver")
        self._session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=concurrency, pool_maxsize=concurrency)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    # ---- intake ----------------------------------------------------------------------------------------------
    def publish(self, events: Iterable[EventGridEvent]) -> int:
        """Queue the events that pass the subscription filter; returns how many did."""
        passed = 0
        for event in events:
            self.stats.published += 1
            wire = event_to_wire(event, self.schema)
            if self.filter is not None and not self.filter.matches(wire):
                self.stats.filtered += 1
                continue
            if not self._pending:
                self._oldest_pending = time.monotonic()
            self._pending.append(wire)
            passed += 1
        return passed

    # ---- the delivery loop -----------------------------------------------------------------------------------
    def pump(self) -> None:
        """Batch what is pending, send what is due, settle what came back. Never blocks for long."""
        self._batch_pending()
        now = time.monotonic()
        due = [d for d in self._scheduled if d.due <= now]
        if due:
            self._scheduled = [d for d in self._scheduled if d.due > now]
            ttl = self.policy.ttl_minutes * 60 * self.policy.time_scale
            for delivery in due:
                if delivery.attempts and now - delivery.created > ttl:  # TTL is checked at the next attempt
                    self._dead_letter(delivery, "TimeToLiveExceeded")
                    continue
                self._in_flight[self._pool.submit(self._send, delivery)] = delivery
        done = [f for f in self._in_flight if f.done()]
        for future in done:
            self._settle(self._in_flight.pop(future), *future.result())

    @property
    def idle(self) -> bool:
        return not (self._pending or self._scheduled or self._in_flight)

    def drain(self, timeout: float, tick: Callable[[], None] | None = None) -> bool:
        """Pump until everything is delivered or dead-lettered; False if ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        while not self.idle and time.monotonic() < deadline:
            self._batch_pending(flush=True)
            self.pump()
            if tick is not None:
                tick()
            if self._in_flight:
                wait(list(self._in_flight), timeout=0.05, return_when=FIRST_COMPLETED)
            elif not self._pending:
                time.sleep(0.01)
        return self.idle

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._session.close()

    def _batch_pending(self, flush: bool = False) -> None:
        if not self._pending:
            return
        if not flush and len(self._pending) < self.max_batch and time.monotonic() - self._oldest_pending < self.linger:
            return
        pending, self._pending = self._pending, []
        chaos = self.chaos
        if chaos is not None and len(pending) > 1 and self.rng.random() < chaos.reorder:
            self.rng.shuffle(pending)
            self.stats.reordered += 1
        batch: list[dict[str, Any]] = []
        size = 0
        for wire in pending:
            event_size = len(orjson.dumps(wire))
            if batch and (len(batch) >= self.max_batch or size + event_size > self.max_batch_bytes):
                self._schedule(batch)
                batch, size = [], 0
            batch.append(wire)
            size += event_size
        if batch:
            self._schedule(batch)

    def _schedule(self, events: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        delivery = ScheduledDelivery(events, now, _now_iso(), now)
        chaos = self.chaos
        if chaos is not None:
            if self.rng.random() < chaos.delay:
                delivery.due = now + self.rng.uniform(0, chaos.max_delay)
                self.stats.delayed += 1
            if self.rng.random() < chaos.duplicate:
                twin = ScheduledDelivery(list(events), now + self.rng.uniform(0, chaos.max_delay),
                                         delivery.publish_time, now, copy=True)
                self._scheduled.append(twin)
                self.stats.duplicated += 1
        self._scheduled.append(delivery)

    def _send(self, delivery: ScheduledDelivery) -> tuple[int | None, str]:
        single_ce = self.schema == "cloudevents" and len(delivery.events) == 1
        if self.schema == "eventgrid":
            content_type = "application/json"
        elif single_ce:
            content_type = "application/cloudevents+json; charset=utf-8"
        else:
            content_type = "application/cloudevents-batch+json; charset=utf-8"
        body = orjson.dumps(delivery.events[0] if single_ce else delivery.events)
        headers = {"Content-Type": content_type, "aeg-event-type": "Notification",
                   "aeg-subscription-name": self.subscription_name.upper(),
                   "aeg-delivery-count": str(delivery.attempts), "aeg-metadata-version": "1",
                   **self.extra_headers}
        if len(delivery.events) == 1 and self.schema == "eventgrid":
            headers["aeg-data-version"] = str(delivery.events[0].get("dataVersion", ""))
        try:
            response = self._session.post(self.endpoint, data=body, headers=headers, timeout=self.timeout)
        except requests.Timeout:
            return None, "TimedOut"
        except requests.RequestException as exc:
            return None, f"GenericError ({type(exc).__name__})"
        status = response.status_code
        return status, "Success" if status in SUCCESS else OUTCOMES.get(status, "GenericError")

    def _settle(self, delivery: ScheduledDelivery, status: int | None, outcome: str) -> None:
        delivery.attempts += 1
        delivery.last_status, delivery.last_outcome, delivery.last_attempt_time = status, outcome, _now_iso()
        self.stats.posts += 1
        self.stats.statuses[str(status) if status is not None else outcome.split(" ")[0]] += 1
        if status in SUCCESS:
            self.stats.delivered += len(delivery.events)
            if self.on_delivered is not None:
                self.on_delivered(delivery.ids)
            return
        self.stats.failed_attempts += 1
        if status in NOT_RETRIED:
            self._dead_letter(delivery, "UndeliverableDueToClientError" if status != 413 else "EntityTooLarge")
            return
        if delivery.attempts >= self.policy.max_attempts:
            self._dead_letter(delivery, "MaxDeliveryAttemptsExceeded")
            return
        delivery.due = time.monotonic() + self.policy.wait(delivery.attempts, status, self.rng)
        self.stats.retries += 1
        self._scheduled.append(delivery)

    def _dead_letter(self, delivery: ScheduledDelivery, reason: str) -> None:
        if self.deadletter_dir is None:
            self.stats.dropped += len(delivery.events)
            return
        self.stats.dead_lettered += len(delivery.events)
        records = [{**event, "deadLetterReason": reason, "deliveryAttempts": delivery.attempts,
                    "lastDeliveryOutcome": delivery.last_outcome, "lastHttpStatusCode": delivery.last_status,
                    "publishTime": delivery.publish_time, "lastDeliveryAttemptTime": delivery.last_attempt_time}
                   for event in delivery.events]
        now = datetime.now(UTC)
        folder = self.deadletter_dir / self.subscription_name / now.strftime("%Y/%m/%d/%H")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{uuid.uuid4()}.json").write_bytes(orjson.dumps(records, option=orjson.OPT_INDENT_2))
