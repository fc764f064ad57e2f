"""The Event Grid webhook's decisions: handshakes, headers, body shapes and status codes (docs/azure-behaviour.md §6).

Pure: headers and bytes in, a ``Reply`` (status, JSON body, headers) or a ``Deliver`` (the events to process) out.
The HTTP door only translates between ``func.HttpRequest``/``func.HttpResponse`` and these.

Status codes are chosen for Event Grid's retry rules. It retries everything except 400, 401, 403 and 413 to a
webhook (those are dead-lettered or dropped), so:

* 200 — processed; quarantined events included (they are kept for replay: redelivery cannot fix them).
* 400 — the body is not JSON, not events, or an unknown ``aeg-event-type``: it will never be better.
* 401 — the Entra bearer token is missing or invalid (only when token validation is configured).
* 403 — ``aeg-subscription-name`` is not on the allow-list (also refuses the validation handshake).
* 413 — the body exceeds Event Grid's 1 MB: something other than Event Grid sent it.
* 503 + Retry-After — a transient failure (ADT throttled or down, state store down): the whole batch comes
  again; events already applied are no-ops the second time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from shared.ingest.json_elements import iter_elements, loads
from shared.outcome import Outcome
from shared.twins.pipeline import BatchReport

VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
NOTIFICATION = "notification"
VALIDATION = "subscriptionvalidation"
# Event Grid sends SubscriptionDeletion; the Functions host's own endpoint also knows Unsubscribe.
GOODBYES = frozenset({"subscriptiondeletion", "unsubscribe"})


@dataclass(frozen=True, slots=True)
class WebhookPolicy:
    allowed_subscriptions: frozenset[str] = frozenset()  # lower-case; empty = any subscription
    max_body_bytes: int = 1_048_576
    retry_after_seconds: int = 30


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body) if self.body is not None else b""


@dataclass(frozen=True, slots=True)
class Deliver:
    """A notification to process as one batch."""

    events: list[Any]
    subscription: str | None


def lower_keys(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error": {"code": code, "message": message}})


def options_reply(headers: Mapping[str, str]) -> Reply:
    """CloudEvents webhook abuse protection (CloudEvents HTTP webhook spec §4): grant the origin that asks.

    The origin Event Grid sends is not documented by value, so the one received is echoed. The rate is not limited
    here ('*'): Event Grid's own batching and the Functions scale controller bound it.
    """
    h = lower_keys(headers)
    origin = h.get("webhook-request-origin", "").strip()
    if not origin:
        return _error(400, "NOT_A_HANDSHAKE", "OPTIONS without WebHook-Request-Origin")
    return Reply(200, None, {"WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", "Allow": "POST"})


def decide_post(headers: Mapping[str, str], body: bytes, policy: WebhookPolicy) -> Reply | Deliver:
    """What to do with one POST: answer at once (handshake, refusal) or deliver its events."""
    h = lower_keys(headers)
    subscription = h.get("aeg-subscription-name")
    if policy.allowed_subscriptions and (subscription or "").strip().lower() not in policy.allowed_subscriptions:
        return _error(403, "SUBSCRIPTION_NOT_ALLOWED",
                      f"event subscription {subscription!r} is not in WEBHOOK_ALLOWED_SUBSCRIPTIONS")
    if len(body) > policy.max_body_bytes:
        return _error(413, "BODY_TOO_LARGE", f"body is {len(body)} bytes, the limit is {policy.max_body_bytes}")
    # A missing header is treated as a notification: CloudEvents senders other than Event Grid do not set it.
    kind = h.get("aeg-event-type", "Notification").strip().lower()
    if kind in GOODBYES:
        return Reply(200, {"acknowledged": kind})
    if kind not in (NOTIFICATION, VALIDATION):
        return _error(400, "UNKNOWN_EVENT_TYPE_HEADER", f"aeg-event-type {h.get('aeg-event-type')!r} is not known")
    try:
        parsed = loads(body)  # integers beyond 64 bits kept exact, as the trigger door's binding reads them
    except orjson.JSONDecodeError as exc:
        # A complete array orjson refuses because of one element (a lone-surrogate escape, NaN, nesting past 1024
        # levels): each element on its own, so the bad one is quarantined (MALFORMED_JSON or UNSUPPORTED_VALUE)
        # and its neighbours are applied. A body that is broken as a whole still gets 400.
        parsed = _elements_one_by_one(body)
        if parsed is None:
            return _error(400, "MALFORMED_JSON", f"body is not JSON: {exc}")
    events = parsed if isinstance(parsed, list) else [parsed]
    if not any(isinstance(e, dict) for e in events):
        # Not one object: this is not events at all. (Single bad elements of an array are quarantined instead.)
        return _error(400, "NOT_EVENTS", "body must be an event object or an array of event objects")
    if kind == VALIDATION:
        return _validation_reply(events)
    return Deliver(events, subscription)


def _elements_one_by_one(body: bytes) -> list[Any] | None:
    if not body.rstrip().endswith(b"]"):
        return None  # not a complete array (e.g. a body that ends early): refused as a whole
    elements = [value for value, _ in iter_elements(body)]
    return elements if any(isinstance(e, dict) for e in elements) else None


def _validation_reply(events: list[Any]) -> Reply:
    for event in events:
        if isinstance(event, dict) and event.get("eventType") == VALIDATION_EVENT:
            data = event.get("data")
            code = data.get("validationCode") if isinstance(data, dict) else None
            if isinstance(code, str) and code:
                return Reply(200, {"validationResponse": code})
    return _error(400, "NOT_A_HANDSHAKE", f"SubscriptionValidation without a {VALIDATION_EVENT} carrying a code")


def batch_reply(report: BatchReport, policy: WebhookPolicy) -> Reply:
    counts = {k: v for k, v in report.counts().items() if v}
    summary: dict[str, Any] = {"events": len(report.results), "outcomes": counts, "twinWrites": report.twin_writes}
    retry = report.transient
    if retry:
        summary["retry"] = sorted({r.code or "" for r in retry})
        return Reply(503, summary, {"Retry-After": str(policy.retry_after_seconds)})
    quarantined = [r for r in report.results if r.outcome is Outcome.QUARANTINED]
    if quarantined:
        summary["quarantined"] = [{"index": r.index, "id": r.event_id, "code": r.code, "path": r.path}
                                  for r in quarantined[:20]]
    return Reply(200, summary)


def transient_reply(message: str, policy: WebhookPolicy) -> Reply:
    """A transient failure outside the per-twin work (e.g. the quarantine store is down)."""
    return Reply(503, {"error": {"code": "TRANSIENT", "message": message}},
                 {"Retry-After": str(policy.retry_after_seconds)})
