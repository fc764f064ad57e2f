"""Event Grid sink (azure-eventgrid ``EventGridPublisherClient``): a custom topic, CloudEvents or Event Grid schema.

Events go out in requests of up to ``MAX_EVENTS`` (well under Event Grid's 1 MB per request). If a request is
refused as a whole (400/413) and held several events, each is resent alone so only the bad one is quarantined.
Credential: ``AzureKeyCredential`` (header ``aeg-sas-key``) from an app setting, else Entra through
``DefaultAzureCredential`` (the identity needs the "EventGrid Data Sender" role on the topic).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import AzureError, HttpResponseError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent, EventGridPublisherClient

from shared.adapters.sinks.common import fail_rest, setting, unavailable
from shared.egress.config import EventGridEndpoint
from shared.egress.ports import SENT, Delivery, Outgoing, Status
from shared.errors import Code, PermanentError

MAX_EVENTS = 100
PERMANENT_STATUS = frozenset({400, 413})  # 401/403/404 are configuration: retried, not blamed on the message


def to_cloud_event(event: Mapping[str, Any]) -> CloudEvent[Any]:
    """The SDK model of a structured CloudEvent; unknown attributes (``traceparent``) stay extensions. The SDK keeps
    ``time`` as a datetime, so a 7-digit fraction goes out with 6 (microseconds)."""
    return CloudEvent.from_dict(dict(event))


def to_eventgrid_event(event: Mapping[str, Any]) -> EventGridEvent:
    return EventGridEvent(subject=str(event.get("subject") or ""), event_type=str(event["type"]),
                          data=event.get("data"), data_version="1.0", id=str(event["id"]),
                          event_time=event.get("time"))


class EventGridSink:
    def __init__(self, name: str, client: EventGridPublisherClient, schema: str = "cloudevents",
                 send_options: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.client = client
        self.schema = schema
        # Per-call options (e.g. retry_total): azure-eventgrid 4.22.1 drops client-level kwargs for basic topics.
        self.send_options = dict(send_options or {})

    @classmethod
    def from_endpoint(cls, name: str, endpoint: EventGridEndpoint, env: Mapping[str, str],
                      **send_options: Any) -> EventGridSink:
        credential: Any
        if endpoint.key_setting:
            credential = AzureKeyCredential(setting(env, endpoint.key_setting, name))
        else:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return cls(name, EventGridPublisherClient(endpoint.endpoint, credential), endpoint.schema_, send_options)

    def _render(self, message: Outgoing) -> CloudEvent[Any] | EventGridEvent:
        if self.schema == "eventgrid":
            return to_eventgrid_event(message.event)
        return to_cloud_event(message.event)

    def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        deliveries: list[Delivery | None] = [None] * len(messages)
        for start in range(0, len(messages), MAX_EVENTS):
            chunk = list(range(start, min(start + MAX_EVENTS, len(messages))))
            failure = self._post(chunk, messages, deliveries)
            if failure is not None:
                return fail_rest(deliveries, unavailable(self.name, failure))
        return [d if d is not None else SENT for d in deliveries]

    def _post(self, chunk: list[int], messages: Sequence[Outgoing], deliveries: list[Delivery | None]
              ) -> Exception | None:
        """Send one request; on a whole-request refusal, isolate the bad event(s). Returns a transient failure."""
        try:
            self.client.send([self._render(messages[i]) for i in chunk], **self.send_options)
        except HttpResponseError as exc:
            if exc.status_code not in PERMANENT_STATUS:
                return exc
            if len(chunk) == 1:
                code = Code.MESSAGE_TOO_LARGE if exc.status_code == 413 else Code.DELIVERY_REJECTED
                deliveries[chunk[0]] = Delivery(Status.REJECTED, PermanentError(
                    code, f"{self.name}: HTTP {exc.status_code}: {exc.message}"))
                return None
            for i in chunk:
                failure = self._post([i], messages, deliveries)
                if failure is not None:
                    return failure
            return None
        except AzureError as exc:  # connection problems, timeouts
            return exc
        for i in chunk:
            deliveries[i] = SENT
        return None

    def close(self) -> None:
        self.client.close()
