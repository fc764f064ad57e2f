"""Checks made before any twin is touched: size, topic, event type, subject (docs/azure-behaviour.md §1.1).

"Don't assume that events are from a particular source. Always check the message topic" and "always check the
eventType": several subscriptions may target one handler, and a handler subscribed to the wrong topic by mistake
must not write twins. IoT Hub sends topics in upper case, so topics compare case-insensitively.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from shared.errors import Code, PermanentError
from shared.ingest.events import IotHubEvent
from shared.ingest.validation import Envelope
from shared.settings.app_config import ANY_IOT_HUB, AppConfig

# Any IoT Hub resource id: /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Devices/IotHubs/{hub}
_VERDICTS_LIMIT = 1024
_IOT_HUB_TOPIC = re.compile(r"^/subscriptions/[^/]+/resourcegroups/[^/]+/providers/microsoft\.devices/iothubs/[^/]+$")


@dataclass(frozen=True, slots=True)
class Guard:
    allowed_topics: frozenset[str]  # lower-cased resource ids
    any_iot_hub: bool  # '*' in the allow-list: any IoT Hub topic (local runs); never the default
    allowed_event_types: frozenset[str]
    max_event_bytes: int
    # Topic as sent -> allowed: a deployment sees a handful of topics, each checked once (bounded; not compared).
    _verdicts: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_config(cls, config: AppConfig) -> Guard:
        topics = {t.strip().lower().rstrip("/") for t in config.topics if t.strip()}
        return cls(
            allowed_topics=frozenset(topics - {ANY_IOT_HUB}),
            any_iot_hub=ANY_IOT_HUB in topics,
            allowed_event_types=frozenset(config.event_types),
            max_event_bytes=config.limits.max_event_bytes,
        )

    def _topic_allowed(self, topic: str) -> bool:
        topic = topic.lower().rstrip("/")
        return topic in self.allowed_topics or bool(self.any_iot_hub and _IOT_HUB_TOPIC.match(topic))

    def check_size(self, size: int) -> None:
        if size > self.max_event_bytes:
            raise PermanentError.at(
                Code.EVENT_TOO_LARGE, "", f"event is {size} bytes, the limit is {self.max_event_bytes}"
            )

    def check_envelope(self, envelope: Envelope) -> None:
        allowed = self._verdicts.get(envelope.topic)
        if allowed is None:
            allowed = self._topic_allowed(envelope.topic)
            if len(self._verdicts) < _VERDICTS_LIMIT:
                self._verdicts[envelope.topic] = allowed
        if not allowed:
            raise PermanentError.at(
                Code.TOPIC_NOT_ALLOWED, envelope.names["topic"], f"topic {envelope.topic[:200]!r} is not allowed"
            )
        if envelope.event_type not in self.allowed_event_types:
            raise PermanentError.at(
                Code.EVENT_TYPE_NOT_ALLOWED,
                envelope.names["event_type"],
                f"event type {envelope.event_type[:200]!r} is not allowed",
            )


def check_subject(event: IotHubEvent) -> None:
    """``subject`` must name the device the data speaks of (module events may add ``/modules/{moduleId}``)."""
    expected = f"devices/{event.device_id}"
    if event.subject == expected:
        return
    if event.module_id and event.subject == f"{expected}/modules/{event.module_id}":
        return
    raise PermanentError.at(
        Code.SUBJECT_MISMATCH, "subject", f"subject {event.subject[:200]!r} does not match device {event.device_id!r}"
    )
