"""Event route endpoints for ``adt serve --endpoints FILE``: where the emulator delivers ADT's notifications.

In Azure an endpoint is a control-plane resource (an Event Grid topic, an Event Hubs hub, a Service Bus topic) and
the routes that use it are data-plane resources (``PUT /eventroutes/{id}`` with a filter). Locally the endpoints
come from a JSON file::

    {"endpoints": {
       "app":   {"kind": "webhook", "url": "http://127.0.0.1:7071/runtime/webhooks/eventgrid?functionName=…",
                 "schema": "eventgrid"},
       "ce":    {"kind": "webhook", "url": "https://…", "schema": "cloudevents", "ca": "ca.pem"},
       "audit": {"kind": "jsonl", "path": ".run/notifications.jsonl", "schema": "cloudevents"}}}

``webhook`` stands for an Event Grid topic with a webhook subscription: Event Grid schema (``eventgrid``, the
default) or CloudEvents 1.0 (``cloudevents``), one event per request as Event Grid does by default, the delivery
headers Event Grid sets (``aeg-event-type``, ``aeg-delivery-count``, ``aeg-subscription-name``…) and its endpoint
validation before the first delivery (``SubscriptionValidation`` event for the Event Grid schema; the CloudEvents
``OPTIONS`` abuse-protection handshake) — ``"validate": false`` skips it. ``jsonl`` appends each notification as
one line (``eventgrid``, ``cloudevents`` or ``amqp`` = ``{"properties", "body"}`` as an Event Hubs consumer sees it).

Delivery (Learn concepts-route-events: at least once; Event Grid delivery-and-retry for the statuses):
* every notification a route's filter matches is queued when its write commits (before the write is answered);
* per endpoint, notifications of one twin go through one lane, strictly in write order: a lane retries its head
  until it is delivered — so a twin's notifications are never reordered, other twins' lanes keep going;
* 2xx (200-204) is success; 400, 401, 403 and 413 are not retried (Event Grid dead-letters those): the
  notification goes to the endpoint's ``deadletter`` JSON Lines file (if set) and the lane moves on; anything
  else, and connection errors, are retried after 0.05 s, 0.2 s, 0.5 s, 1 s, 2 s, then every 5 s, up to
  ``max_attempts`` (default 30, Event Grid's default) — Event Grid's own schedule (10 s … 24 h) is stretched for a
  laptop.
* The queue lives in memory: notifications not yet delivered when the emulator stops are lost (ADT keeps them).
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import orjson

from shared.adapters.twins.embedded import TwinGraph
from shared.adapters.twins.embedded.graph import Notification
from shared.adapters.twins.embedded.notifications import DEFAULT_TOPIC, in_schema, to_amqp, to_cloudevent

log = logging.getLogger("twinbridge.adt.endpoints")

SCHEMAS: Final = ("eventgrid", "cloudevents")
FILE_SCHEMAS: Final = (*SCHEMAS, "amqp")
NOT_RETRIED: Final = frozenset({400, 401, 403, 413})
BACKOFF: Final = (0.05, 0.2, 0.5, 1.0, 2.0)
BACKOFF_CAP: Final = 5.0
ORIGIN: Final = "eventgrid.azure.net"


class EndpointsError(ValueError):
    pass


@dataclass(frozen=True)
class Endpoint:
    name: str
    kind: str  # webhook | jsonl
    schema: str
    url: str | None = None
    path: str | None = None
    ca: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    validate: bool = True
    topic: str = DEFAULT_TOPIC
    lanes: int = 4
    max_attempts: int = 30
    timeout: float = 30.0
    deadletter: str | None = None
    duplicate: float = 0.0  # fraction delivered twice (at least once allows it; tests the receiver's dedupe)


def parse_endpoints(data: Any, base: Path | None = None) -> dict[str, Endpoint]:
    """The ``--endpoints`` document (``{"endpoints": {...}}`` or the bare mapping) → endpoints; EndpointsError with
    the offending name and field otherwise. Relative paths are taken from ``base`` (the file's folder)."""
    if isinstance(data, dict) and isinstance(data.get("endpoints"), dict):
        data = data["endpoints"]
    if not isinstance(data, dict):
        raise EndpointsError("expected a JSON object of endpoint name → settings")
    found: dict[str, Endpoint] = {}
    for name, spec in data.items():
        if not isinstance(spec, dict):
            raise EndpointsError(f"{name}: settings must be an object")
        kind = spec.get("kind", "webhook")
        schema = spec.get("schema", "eventgrid" if kind == "webhook" else "cloudevents")
        unknown = set(spec) - {"kind", "schema", "url", "path", "ca", "headers", "validate", "topic", "lanes",
                               "max_attempts", "timeout", "deadletter", "duplicate"}
        if unknown:
            raise EndpointsError(f"{name}: unknown setting(s) {sorted(unknown)}")

        def resolve(value: Any, what: str, name: str = name) -> str | None:
            if value is None:
                return None
            if not isinstance(value, str) or not value:
                raise EndpointsError(f"{name}.{what}: must be a non-empty string")
            path = Path(value)
            return str(path if path.is_absolute() or base is None else base / path)

        if kind == "webhook":
            url = spec.get("url")
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                raise EndpointsError(f"{name}.url: an http(s) URL is required for a webhook")
            if schema not in SCHEMAS:
                raise EndpointsError(f"{name}.schema: {schema!r} is not one of {list(SCHEMAS)}")
        elif kind == "jsonl":
            url = None
            if not isinstance(spec.get("path"), str):
                raise EndpointsError(f"{name}.path: a file path is required for a jsonl endpoint")
            if schema not in FILE_SCHEMAS:
                raise EndpointsError(f"{name}.schema: {schema!r} is not one of {list(FILE_SCHEMAS)}")
        else:
            raise EndpointsError(f"{name}.kind: {kind!r} is not webhook or jsonl")
        headers = spec.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise EndpointsError(f"{name}.headers: an object of strings")
        # Only what the file sets is passed: every default is the Endpoint field's, written once.
        given: dict[str, Any] = {}
        for number in ("lanes", "max_attempts"):
            if number in spec:
                value = spec[number]
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise EndpointsError(f"{name}.{number}: a positive integer")
                given[number] = value
        if "timeout" in spec:
            timeout = spec["timeout"]
            if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
                raise EndpointsError(f"{name}.timeout: a positive number of seconds")
            given["timeout"] = float(timeout)
        if "validate" in spec:
            given["validate"] = bool(spec["validate"])
        if "topic" in spec:
            given["topic"] = str(spec["topic"])
        if "duplicate" in spec:
            given["duplicate"] = _fraction(spec["duplicate"], f"{name}.duplicate")
        found[name] = Endpoint(
            name, kind, schema, url=url, path=resolve(spec.get("path"), "path"), ca=resolve(spec.get("ca"), "ca"),
            headers=dict(headers), deadletter=resolve(spec.get("deadletter"), "deadletter"), **given)
    return found


def _fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise EndpointsError(f"{where}: a number from 0 to 1")
    return float(value)


def load_endpoints_file(path: str | Path) -> dict[str, Endpoint]:
    file = Path(path)
    try:
        return parse_endpoints(orjson.loads(file.read_bytes()), file.resolve().parent)
    except (OSError, orjson.JSONDecodeError) as exc:
        raise EndpointsError(f"{path}: {exc}") from None


class _Refused(Exception):
    """The endpoint answered with a status Event Grid does not retry."""


class _Lane:
    """One ordered queue of an endpoint: its head is retried until delivered (or dead-lettered)."""

    def __init__(self, sender: _Sender, index: int) -> None:
        self.sender = sender
        self.queue: deque[dict[str, Any]] = deque()
        self.cond = threading.Condition()
        self.busy = False
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name=f"adt-route-{sender.endpoint.name}-{index}",
                                       daemon=True)

    def put(self, event: dict[str, Any]) -> None:
        with self.cond:
            self.queue.append(event)
            self.cond.notify()

    def pending(self) -> int:
        with self.cond:
            return len(self.queue) + (1 if self.busy else 0)

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.stopping:
                    self.cond.wait()
                if not self.queue:
                    return
                event = self.queue.popleft()
                self.busy = True
            try:
                self.sender.deliver(event, lambda: self.stopping)
            finally:
                with self.cond:
                    self.busy = False
                    self.cond.notify_all()


class _Sender:
    def __init__(self, endpoint: Endpoint, stats: Counter[str]) -> None:
        self.endpoint = endpoint
        self.stats = stats
        self.lock = threading.Lock()  # file writes; the validation handshake
        self.validated = not endpoint.validate or endpoint.kind != "webhook"
        self.rng = random.Random(zlib.crc32(endpoint.name.encode()))  # duplicates: reproducible per endpoint
        self.local = threading.local()
        self.lanes = [_Lane(self, i) for i in range(endpoint.lanes if endpoint.kind == "webhook" else 1)]
        for lane in self.lanes:
            lane.thread.start()

    def lane_for(self, twin_id: str) -> _Lane:
        return self.lanes[zlib.crc32(twin_id.encode()) % len(self.lanes)]

    def count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.stats[f"{self.endpoint.name}.{what}"] += n

    # ---- one notification, retried ------------------------------------------------------------------------------
    def deliver(self, event: dict[str, Any], stopping: Any) -> None:
        endpoint = self.endpoint
        attempt = 0
        while True:
            attempt += 1
            try:
                if endpoint.kind == "jsonl":
                    self._append(event)
                else:
                    self._post(event, attempt)
                self.count("delivered")
                if attempt > 1:
                    self.count("retried", attempt - 1)
                if endpoint.duplicate and self._chance():
                    self.count("duplicated")
                    self.deliver_again(event)
                return
            except _Refused as refused:
                self._dead_letter(event, str(refused), attempt)
                return
            except Exception as exc:  # unreachable, 5xx, 429, timeouts: Event Grid retries these
                if attempt >= endpoint.max_attempts or (stopping() and attempt >= 3):
                    self._dead_letter(event, f"{type(exc).__name__}: {exc}", attempt)
                    return
                delay = BACKOFF[attempt - 1] if attempt <= len(BACKOFF) else BACKOFF_CAP
                log.info("endpoint %s: attempt %d for %s failed (%s); retry in %.2f s", endpoint.name, attempt,
                         event.get("id"), exc, delay)
                time.sleep(delay)

    def _chance(self) -> bool:
        with self.lock:
            return self.rng.random() < self.endpoint.duplicate

    def deliver_again(self, event: dict[str, Any]) -> None:
        """The same notification once more (a redelivery, as when an acknowledgement is lost)."""
        try:
            if self.endpoint.kind == "jsonl":
                self._append(event)
            else:
                self._post(event, 2)
        except Exception as exc:  # it was delivered once already: at least once holds
            log.info("endpoint %s: duplicate of %s not delivered: %s", self.endpoint.name, event.get("id"), exc)

    def _dead_letter(self, event: dict[str, Any], reason: str, attempts: int) -> None:
        self.count("deadlettered")
        log.warning("endpoint %s: notification %s dead-lettered after %d attempt(s): %s", self.endpoint.name,
                    event.get("id"), attempts, reason)
        if self.endpoint.deadletter:
            record = {"deadLetterReason": reason, "deliveryAttempts": attempts, "endpoint": self.endpoint.name,
                      "event": event}
            with self.lock, open(self.endpoint.deadletter, "ab") as out:
                out.write(orjson.dumps(record) + b"\n")

    def _append(self, event: dict[str, Any]) -> None:
        endpoint = self.endpoint
        if endpoint.schema == "amqp":
            properties, body = to_amqp(event)
            line = orjson.dumps({"properties": properties, "body": orjson.loads(body)})
        else:
            line = orjson.dumps(in_schema(event, endpoint.schema, endpoint.topic))
        assert endpoint.path is not None
        with self.lock:
            Path(endpoint.path).parent.mkdir(parents=True, exist_ok=True)
            with open(endpoint.path, "ab") as out:
                out.write(line + b"\n")

    def _session(self) -> Any:
        session = getattr(self.local, "session", None)
        if session is None:
            import requests

            session = self.local.session = requests.Session()
            session.verify = self.endpoint.ca or True
        return session

    def _check(self, response: Any, what: str) -> None:
        if 200 <= response.status_code <= 204:
            return
        message = f"{what}: HTTP {response.status_code} {response.text[:200]!r}"
        if response.status_code in NOT_RETRIED:
            raise _Refused(message)
        raise ConnectionError(message)

    def _validate(self) -> None:
        """Event Grid's endpoint validation, once per endpoint before its first delivery."""
        endpoint = self.endpoint
        assert endpoint.url is not None
        session = self._session()
        if endpoint.schema == "cloudevents":
            response = session.options(endpoint.url, headers={**endpoint.headers, "WebHook-Request-Origin": ORIGIN},
                                       timeout=endpoint.timeout)
            allowed = response.headers.get("WebHook-Allowed-Origin", "")
            if response.status_code != 200 or allowed not in (ORIGIN, "*"):
                raise ConnectionError(f"CloudEvents validation handshake refused (HTTP {response.status_code}, "
                                      f"WebHook-Allowed-Origin {allowed!r})")
            return
        code = str(uuid.uuid4()).upper()
        validation = [{"id": str(uuid.uuid4()), "topic": endpoint.topic, "subject": "",
                       "data": {"validationCode": code, "validationUrl": None},
                       "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                       "eventTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                       "metadataVersion": "1", "dataVersion": "2"}]
        response = session.post(endpoint.url, data=orjson.dumps(validation), timeout=endpoint.timeout,
                                headers={**endpoint.headers, "Content-Type": "application/json",
                                         "aeg-event-type": "SubscriptionValidation",
                                         "aeg-subscription-name": endpoint.name.upper()})
        try:
            answer = response.json().get("validationResponse") if response.status_code == 200 else None
        except ValueError:
            answer = None
        if answer != code:
            raise ConnectionError(f"subscription validation failed (HTTP {response.status_code}, "
                                  f"validationResponse {answer!r})")

    def _post(self, event: dict[str, Any], attempt: int) -> None:
        endpoint = self.endpoint
        assert endpoint.url is not None
        if not self.validated:
            with self.lock:
                if not self.validated:
                    self._validate()
                    self.validated = True
                    log.info("endpoint %s: validated %s", endpoint.name, endpoint.url)
        headers = {**endpoint.headers, "aeg-event-type": "Notification", "aeg-delivery-count": str(attempt - 1),
                   "aeg-subscription-name": endpoint.name.upper(), "aeg-metadata-version": "1",
                   "aeg-data-version": "1.0"}
        if endpoint.schema == "cloudevents":
            body = orjson.dumps(event)
            headers["Content-Type"] = "application/cloudevents+json; charset=utf-8"
        else:
            body = orjson.dumps([in_schema(event, "eventgrid", endpoint.topic)])
            headers["Content-Type"] = "application/json; charset=utf-8"
        self._check(self._session().post(endpoint.url, data=body, headers=headers, timeout=endpoint.timeout),
                    f"POST {endpoint.url}")

    def stop(self) -> None:
        for lane in self.lanes:
            with lane.cond:
                lane.stopping = True
                lane.cond.notify_all()


class RouteDispatcher:
    """Subscribes to a graph and delivers each change to the endpoints of the event routes whose filter matches."""

    def __init__(self, graph: TwinGraph, endpoints: Mapping[str, Endpoint], host: str) -> None:
        self.graph = graph
        self.host = host
        self.stats: Counter[str] = Counter()
        self.senders = {name: _Sender(endpoint, self.stats) for name, endpoint in endpoints.items()}
        graph.subscribe(self._on_change)

    def _on_change(self, change: Notification) -> None:
        """Runs under the graph's lock right after the commit: match and queue, nothing slow."""
        event = to_cloudevent(change, self.host)
        self.stats["notifications"] += 1
        for route in self.graph.event_routes():  # their filters compiled by the graph when each route was put
            if not route.compiled.matches(event):
                continue
            sender = self.senders.get(route.endpoint_name)
            if sender is None:
                self.stats["unknown_endpoint"] += 1
                log.warning("event route %s names endpoint %r, which --endpoints does not define", route.id,
                            route.endpoint_name)
                continue
            sender.count("queued")
            sender.lane_for(change.twin_id).put(event)  # the twin the notification is about: what orders lanes

    def pending(self) -> int:
        return sum(lane.pending() for sender in self.senders.values() for lane in sender.lanes)

    def snapshot(self) -> dict[str, Any]:
        """Counters for ``GET /$emulator/deliveries`` (not an ADT API: the emulator's own status)."""
        endpoints: dict[str, dict[str, int]] = {}
        for key, value in list(self.stats.items()):
            name, dot, what = key.rpartition(".")
            if dot:
                endpoints.setdefault(name, {})[what] = value
        return {"notifications": self.stats["notifications"], "pending": self.pending(), "endpoints": endpoints}

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self, timeout: float = 10.0) -> None:
        self.drain(timeout)
        for sender in self.senders.values():
            sender.stop()
