"""Egress sinks, one module per endpoint kind; ``build_sink`` picks one from an endpoint's config."""

from __future__ import annotations

from collections.abc import Mapping

from shared.egress.config import (
    EventGridEndpoint,
    EventHubEndpoint,
    FileEndpoint,
    ServiceBusEndpoint,
    WebhookEndpoint,
)
from shared.egress.ports import Sink

EndpointConfig = EventHubEndpoint | ServiceBusEndpoint | EventGridEndpoint | FileEndpoint | WebhookEndpoint


def build_sink(name: str, endpoint: EndpointConfig, env: Mapping[str, str]) -> Sink:
    """The sink for one configured endpoint. Azure SDKs are imported only for the kinds actually used."""
    if isinstance(endpoint, EventHubEndpoint):
        from shared.adapters.sinks.eventhub import EventHubSink

        return EventHubSink.from_endpoint(name, endpoint, env)
    if isinstance(endpoint, ServiceBusEndpoint):
        from shared.adapters.sinks.servicebus import ServiceBusSink

        return ServiceBusSink.from_endpoint(name, endpoint, env)
    if isinstance(endpoint, EventGridEndpoint):
        from shared.adapters.sinks.eventgrid import EventGridSink

        return EventGridSink.from_endpoint(name, endpoint, env)
    if isinstance(endpoint, FileEndpoint):
        from shared.adapters.sinks.jsonl_file import JsonlFileSink

        return JsonlFileSink(endpoint.path)
    from shared.adapters.sinks.webhook import WebhookSink

    return WebhookSink(endpoint.url, timeout=endpoint.timeout_seconds)
