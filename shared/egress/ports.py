"""Egress ports: where messages go (``Sink``) and what was already forwarded (``ForwardingStore``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from shared.errors import TwinbridgeError


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message for one endpoint, produced by one route from one notification.

    ``event`` is a structured CloudEvent (attributes + ``data``); each sink renders it in its own binding.
    ``key`` is the forwarding key (``<source>|<id>|<route>``, ``#<n>`` appended for the n-th record of a
    multi-record transform): written to the ForwardingStore after a successful send, looked up before one.
    """

    key: str
    route: str
    notification_id: str
    message_id: str  # <notification id>:<route>[:<n>] — Service Bus duplicate detection works on it
    partition_key: str  # the twin id: one twin's messages stay in one partition / session, in order
    event: dict[str, Any]


class Status(StrEnum):
    SENT = "sent"
    REJECTED = "rejected"  # the endpoint refused this message for good: quarantine it
    RETRY = "retry"  # not sent (endpoint unavailable, or an earlier message failed): redeliver


@dataclass(frozen=True, slots=True)
class Delivery:
    status: Status
    error: TwinbridgeError | None = None


SENT = Delivery(Status.SENT)


class Sink(Protocol):
    def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        """One Delivery per message, in order. After the first transient failure nothing more is sent (the rest
        are RETRY), so a twin's messages never overtake each other across a redelivery."""
        ...

    def close(self) -> None: ...


class ForwardingStore(Protocol):
    def seen(self, keys: Sequence[str]) -> set[str]:
        """The keys already forwarded within the retention window. TransientError if the store is unreachable."""
        ...

    def record(self, keys: Sequence[str]) -> None:
        """Remember these keys as forwarded (idempotent). TransientError if the store is unreachable."""
        ...

    def purge(self, limit: int | None = None) -> int:
        """Delete records past the retention, at most ``limit``; the number deleted. Housekeeping (a timer)."""
        ...
