"""The egress router: a batch of ADT notifications → validated → matched to routes → transformed → sent, once.

At-least-once without duplicates: before sending, the forwarding keys already recorded are skipped; after each
successful send its key is recorded (``ForwardingStore``). A crash between the send and the record, or a failed
record write, resends that message on redelivery — the one window left, and Service Bus closes it too with
duplicate detection on ``message_id``.

Outcomes per notification: permanent problems (invalid notification, a message an endpoint refuses for good) are
quarantined with ``source="egress"``; transient ones (endpoint or store unreachable) are collected and
``EgressReport.raise_if_transient`` raises *after* every successful send of the batch has been recorded, so the
redelivered batch only sends what is missing. Propagation rules run on the same notifications (``propagation``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol

from shared.egress.config import EgressConfig
from shared.egress.notifications import Notification, read_amqp_notification, read_notification
from shared.egress.ports import ForwardingStore, Outgoing, Sink, Status
from shared.egress.transforms import outgoing
from shared.errors import Code, PermanentError, TransientError, TwinbridgeError
from shared.observability import record_egress
from shared.outcome import Outcome
from shared.ports import Quarantine
from shared.quarantine_record import build_record, record_id

log = logging.getLogger("twinbridge.egress")


class Propagator(Protocol):
    def apply(self, notification: Notification) -> int:
        """Run the propagation rules for one notification; the number of parent twins written."""
        ...


@dataclass
class NotificationResult:
    index: int
    id: str | None
    type: str | None
    subject: str | None
    routes: list[str] = field(default_factory=list)
    outcome: Outcome = Outcome.FILTERED  # no route matched and no rule wrote: nothing to do
    sent: int = 0
    skipped: int = 0  # already forwarded before (redelivery)
    rejected: int = 0
    parents_written: int = 0
    twin: str | None = None  # the twin the notification is about (telemetry's subject is a component)
    code: str | None = None
    path: str = ""
    message: str = ""

    # The names shared.observability logs every door's results by.
    @property
    def event_id(self) -> str | None:
        return self.id

    @property
    def event_type(self) -> str | None:
        return self.type

    @property
    def twin_id(self) -> str | None:
        return self.twin if self.twin is not None else self.subject


@dataclass
class EgressReport:
    results: list[NotificationResult] = field(default_factory=list)
    transient: list[TransientError] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(r.sent for r in self.results)

    @property
    def twin_writes(self) -> int:
        """Parent twins written by propagation rules."""
        return sum(r.parents_written for r in self.results)

    def counts(self) -> dict[str, int]:
        counts = {o.value: 0 for o in Outcome}
        for r in self.results:
            counts[r.outcome.value] += 1
        return counts

    def codes(self) -> dict[str, int]:
        return dict(Counter(r.code for r in self.results if r.code))

    def raise_if_transient(self) -> None:
        if self.transient:
            first = self.transient[0]
            raise TransientError(first.code, f"{len(self.transient)} egress failure(s), batch must be redelivered: "
                                 f"{first.message}")


Parse = Callable[[], Notification]


def match(config: EgressConfig, notification: Notification) -> tuple[list[str], list[Outgoing]]:
    """Pure: the names of the routes whose filter matches, and the messages they produce (the dry run uses it)."""
    names: list[str] = []
    messages: list[Outgoing] = []
    for route in config.routes:
        if route.filter.matches(notification.cloudevent):
            names.append(route.name)
            messages.extend(outgoing(notification, route))
    return names, messages


class EgressRouter:
    def __init__(self, config: EgressConfig, sinks: Mapping[str, Sink], store: ForwardingStore,
                 quarantine: Quarantine, propagator: Propagator | None = None, instance: str | None = None) -> None:
        missing = sorted({r.endpoint for r in config.routes} - set(sinks))
        if missing:
            raise ValueError(f"no sink for endpoint(s) {missing}")
        self.config = config
        self.sinks = sinks
        self.store = store
        self.quarantine = quarantine
        self.propagator = propagator
        self.instance = instance

    def process(self, events: Sequence[Any]) -> EgressReport:
        """Notifications in either JSON schema (Event Grid trigger, CLI)."""
        return self._process([(raw, partial(read_notification, raw, self.instance)) for raw in events])

    def process_amqp(self, messages: Sequence[tuple[Mapping[Any, Any], bytes | str | None]]) -> EgressReport:
        """Notifications in the CloudEvents AMQP binding (Event Hubs trigger): (application properties, body)."""
        items: list[tuple[Any, Parse]] = []
        for props, body in messages:
            raw = {"properties": {_str(k): _str(v) for k, v in props.items()}, "body": _str(body)}
            items.append((raw, partial(read_amqp_notification, props, body)))
        return self._process(items)

    def _process(self, items: list[tuple[Any, Parse]]) -> EgressReport:
        report = EgressReport()
        parsed: list[tuple[NotificationResult, Notification, Any]] = []
        seen_in_batch: set[str] = set()
        for index, (raw, parse) in enumerate(items):
            try:
                notification = parse()
            except PermanentError as exc:
                report.results.append(self._quarantine(NotificationResult(index, _text(raw, "id"), None, None),
                                                       raw, exc, None))
                continue
            result = NotificationResult(index, notification.id, notification.type, notification.subject,
                                        twin=notification.twin_id)
            report.results.append(result)
            if notification.forwarding_id in seen_in_batch:
                result.outcome = Outcome.DUPLICATE
                continue
            seen_in_batch.add(notification.forwarding_id)
            parsed.append((result, notification, raw))

        planned: list[tuple[NotificationResult, Any, Outgoing]] = []
        for result, notification, raw in parsed:
            result.routes, messages = match(self.config, notification)
            planned.extend((result, raw, m) for m in messages)
        self._forward(planned, report)
        for result, notification, raw in parsed:
            self._propagate(result, notification, raw, report)
        for result in report.results:
            if result.outcome is Outcome.FILTERED and (result.sent or result.parents_written):
                result.outcome = Outcome.APPLIED
            elif result.outcome is Outcome.FILTERED and result.skipped and not result.rejected:
                result.outcome = Outcome.DUPLICATE
        log.info("egress batch of %d: %s, %d message(s) sent", len(items),
                 ", ".join(f"{k} {v}" for k, v in report.counts().items() if v), report.sent)
        return report

    def _forward(self, planned: list[tuple[NotificationResult, Any, Outgoing]], report: EgressReport) -> None:
        if not planned:
            return
        try:
            done = self.store.seen([m.key for _, _, m in planned])
        except TransientError as exc:
            for result, _, _ in planned:
                result.outcome, result.code = Outcome.RETRY, str(exc.code)
            report.transient.append(exc)
            return
        by_endpoint: dict[str, list[tuple[NotificationResult, Any, Outgoing]]] = {}
        for entry in planned:
            if entry[2].key in done:
                entry[0].skipped += 1
                continue
            endpoint = next(r.endpoint for r in self.config.routes if r.name == entry[2].route)
            by_endpoint.setdefault(endpoint, []).append(entry)
        sent_keys: list[str] = []
        for endpoint, entries in by_endpoint.items():
            deliveries = self.sinks[endpoint].send([m for _, _, m in entries])
            accepted = sum(1 for d in deliveries if d.status is Status.SENT)
            if accepted:
                record_egress(endpoint, accepted)  # twinbridge.egress.sent{sink=<endpoint name>}
            for (result, raw, message), delivery in zip(entries, deliveries, strict=True):
                if delivery.status is Status.SENT:
                    result.sent += 1
                    sent_keys.append(message.key)
                elif delivery.status is Status.REJECTED:
                    result.rejected += 1
                    error = delivery.error or PermanentError(Code.DELIVERY_REJECTED, "refused by the endpoint")
                    self._quarantine(result, raw, error, message, endpoint)
                else:
                    error = delivery.error or TransientError(Code.SINK_UNAVAILABLE, f"{endpoint} unavailable")
                    result.outcome, result.code, result.message = Outcome.RETRY, str(error.code), error.message
                    if not any(e is error for e in report.transient):
                        report.transient.append(error if isinstance(error, TransientError)
                                                else TransientError(error.code, error.message))
        if sent_keys:
            try:
                self.store.record(sent_keys)
            except TransientError as exc:
                # sent but not remembered: redelivery resends them (Service Bus drops them by message_id)
                log.warning("forwarding records not written for %d sent message(s): %s", len(sent_keys), exc)
                report.transient.append(exc)

    def _propagate(self, result: NotificationResult, notification: Notification, raw: Any,
                   report: EgressReport) -> None:
        if self.propagator is None:
            return
        try:
            result.parents_written += self.propagator.apply(notification)
        except TransientError as exc:
            result.outcome, result.code, result.message = Outcome.RETRY, str(exc.code), exc.message
            report.transient.append(exc)
        except PermanentError as exc:
            self._quarantine(result, raw, exc, None)

    def _quarantine(self, result: NotificationResult, raw: Any, error: TwinbridgeError, message: Outgoing | None,
                    endpoint: str | None = None) -> NotificationResult:
        record = build_record(raw, error, twin_id=message.partition_key if message else None, source="egress")
        if message is not None:
            # one record per (notification, route message): two routes refusing the same notification both show
            record.record_id = record_id({"key": message.key, "event": raw}, error.code)
            record.extra = {"route": message.route, "endpoint": endpoint, "message_id": message.message_id}
        self.quarantine.put(record)
        if result.outcome is not Outcome.RETRY:
            result.outcome = Outcome.QUARANTINED
        result.code, result.path, result.message = str(error.code), error.path, error.message
        log.warning("egress quarantined %s: %s", result.id, error)
        return result


def _str(value: Any) -> Any:
    """AMQP names and values may be bytes; the quarantine record keeps them readable."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _text(raw: Any, name: str) -> str | None:
    value = raw.get(name) if isinstance(raw, dict) else None
    return value if isinstance(value, str) else None
