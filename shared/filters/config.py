"""The ``filters`` section of the app config: one place for the subscription filter and the hub's routing query.

```yaml
filters:
  subscription: { ...Event Grid subscription filter object, ARM shape... }   # optional
  routing_query: "$body.temperature > 20 OR processingPath = 'hot'"          # optional, DeviceTelemetry only
```

``build_event_filter(section)`` compiles both once and returns an ``EventFilter`` (or ``None`` when the section is
absent or empty). ``EventFilter.check(event)`` — also available as ``event_filter(event)`` so it plugs into the
intake as a plain callable — returns ``None`` when the event passes and otherwise the reason: ``"subscription:
<which filter>"`` or ``"routing_query"``. The routing query applies only to ``Microsoft.Devices.DeviceTelemetry``
events (Event Grid ``eventType`` or CloudEvents ``type``) and is evaluated on the event's ``data``, the way IoT Hub
evaluates it before the message ever reaches Event Grid. Invalid configuration raises ``FilterError`` or
``QuerySyntaxError`` whose message starts with the config path (``filters.subscription.advancedFilters[3]: …``,
``filters.routing_query: … at position 7``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shared.filters.event_grid import FilterError, SubscriptionFilter
from shared.filters.iothub_query import QuerySyntaxError, RoutingQuery, compile_routing_query

__all__ = ["TELEMETRY_EVENT_TYPE", "EventFilter", "build_event_filter"]

TELEMETRY_EVENT_TYPE: Final = "Microsoft.Devices.DeviceTelemetry"
_SECTION = "filters"
_KNOWN = ("subscription", "routing_query")


class EventFilter:
    """The compiled ``filters`` section."""

    __slots__ = ("routing_query", "subscription")

    def __init__(self, subscription: SubscriptionFilter | None, routing_query: RoutingQuery | None) -> None:
        self.subscription = subscription
        self.routing_query = routing_query

    def check(self, event: Mapping[str, Any]) -> str | None:
        """None when the event passes every configured filter, else which filter rejected it."""
        if self.subscription is not None:
            reason = self.subscription.explain(event)
            if reason is not None:
                return f"subscription: {reason}"
        if self.routing_query is not None:
            event_type = event.get("type") if "specversion" in event else event.get("eventType")
            if event_type == TELEMETRY_EVENT_TYPE:
                data = event.get("data")
                if not isinstance(data, Mapping) or not self.routing_query.matches(data):
                    return "routing_query"
        return None

    __call__ = check

    def __repr__(self) -> str:
        return f"EventFilter(subscription={self.subscription!r}, routing_query={self.routing_query!r})"


def build_event_filter(section: Mapping[str, Any] | None) -> EventFilter | None:
    """Compile the ``filters`` config section; None when it is absent or configures nothing."""
    if section is None:
        return None
    if not isinstance(section, Mapping):
        raise FilterError(f"{_SECTION}: expected a mapping, got {type(section).__name__}")
    unknown = sorted(str(k) for k in section if k not in _KNOWN)
    if unknown:
        raise FilterError(f"{_SECTION}: unknown key(s) {', '.join(unknown)} (expected {', '.join(_KNOWN)})")
    subscription = None
    raw_sub = section.get("subscription")
    if raw_sub is not None:
        try:
            subscription = SubscriptionFilter.from_dict(raw_sub)
        except FilterError as exc:
            raise exc.under(f"{_SECTION}.subscription") from None
    query = None
    raw_query = section.get("routing_query")
    if raw_query is not None:
        if not isinstance(raw_query, str):
            raise FilterError(f"{_SECTION}.routing_query: expected a string, got {type(raw_query).__name__}")
        if raw_query.strip():
            try:
                query = compile_routing_query(raw_query)
            except QuerySyntaxError as exc:
                raise QuerySyntaxError(
                    f"{_SECTION}.routing_query: {str(exc).rsplit(' at position', 1)[0]}", exc.position, raw_query
                ) from None
    if subscription is None and query is None:
        return None
    return EventFilter(subscription, query)
