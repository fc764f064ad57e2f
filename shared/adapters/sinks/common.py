"""What the sinks share: the CloudEvents AMQP binding, settings lookup, and the 'stop after a failure' rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, Protocol, TypeVar

import orjson

from shared.egress.ports import SENT, Delivery, Outgoing, Status
from shared.errors import Code, ConfigError, PermanentError, Problem, TransientError


class SizedBatch(Protocol):
    """What both SDKs' batches (EventDataBatch, ServiceBusMessageBatch) tell about their size limit."""

    @property
    def max_size_in_bytes(self) -> int: ...


C = TypeVar("C")  # an SDK client
B = TypeVar("B")  # an SDK batch
SB = TypeVar("SB", bound=SizedBatch)  # an SDK batch, as send_in_batches needs it
M = TypeVar("M")  # an SDK message

AMQP_PREFIX = "cloudEvents:"  # the binding's prefix ADT itself uses; receivers accept it and "cloudEvents_"


def amqp_binding(event: Mapping[str, Any]) -> tuple[bytes, dict[str | bytes, Any], str | None]:
    """A structured CloudEvent → (body, application properties, content type), per the CloudEvents AMQP binding:
    ``data`` is the body, ``datacontenttype`` the AMQP content-type, every other attribute a prefixed property."""
    data = event.get("data")
    body = data.encode() if isinstance(data, str) else orjson.dumps(data)
    props: dict[str | bytes, Any] = {}
    for name, value in event.items():
        if name in ("data", "datacontenttype", "data_base64") or value is None:
            continue
        props[AMQP_PREFIX + name] = value if isinstance(value, str | int | float | bool) else orjson.dumps(
            value).decode()
    content_type = event.get("datacontenttype")
    return body, props, content_type if isinstance(content_type, str) else "application/json"


def by_partition(messages: Sequence[Outgoing]) -> dict[str, list[int]]:
    """Message indexes grouped by partition key (the twin), each group in arrival order."""
    groups: dict[str, list[int]] = {}
    for i, message in enumerate(messages):
        groups.setdefault(message.partition_key, []).append(i)
    return groups


def fail_rest(deliveries: list[Delivery | None], error: TransientError) -> list[Delivery]:
    """Every message not yet decided becomes RETRY with ``error``."""
    return [d if d is not None else Delivery(Status.RETRY, error) for d in deliveries]


def setting(env: Mapping[str, str], name: str, endpoint: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"endpoint {endpoint}", [Problem(name, "app setting is not set")])
    return value


def amqp_client(name: str, connection_setting: str | None, namespace: str | None, env: Mapping[str, str], *,
                by_connection: Callable[[str], C], by_identity: Callable[[str, Any], C]) -> C:
    """An Event Hubs or Service Bus client: ``by_identity(namespace, DefaultAzureCredential())`` (managed identity
    in Azure), or ``by_connection(connection string)`` from the app setting ``connection_setting`` (local runs)."""
    if connection_setting:
        return by_connection(setting(env, connection_setting, name))
    if namespace:
        from azure.identity import DefaultAzureCredential

        return by_identity(namespace, DefaultAzureCredential())
    raise ConfigError(f"endpoint {name}", [Problem("namespace", "give namespace or connection_setting")])


def unavailable(endpoint: str, exc: Exception) -> TransientError:
    return TransientError(Code.SINK_UNAVAILABLE, f"{endpoint}: {type(exc).__name__}: {exc}")


def fill_batches(indexes: Sequence[int], build: Callable[[int], M], new_batch: Callable[[], B],
                 add: Callable[[B, M], bool], ship: Callable[[B, list[int]], None],
                 too_large: Callable[[int, B], None]) -> None:
    """Add messages in order to the current batch; when it is full, ship it and start the next.

    ``add`` returns False when the message does not fit; a message that does not fit even an empty batch goes to
    ``too_large``. ``ship`` gets each batch with the indexes of the messages it holds (and handles its own errors).
    """
    batch = new_batch()
    pending: list[int] = []
    for i in indexes:
        message = build(i)
        if not add(batch, message):
            if pending:
                ship(batch, pending)
                batch, pending = new_batch(), []
            if not add(batch, message):
                too_large(i, batch)
                continue
        pending.append(i)
    if pending:
        ship(batch, pending)


def send_in_batches(endpoint: str, messages: Sequence[Outgoing], *, build: Callable[[Outgoing], M],
                    new_batch: Callable[[str], SB], add: Callable[[SB, M], object], full: type[Exception],
                    send: Callable[[SB], object], unavailable_errors: type[Exception],
                    refused_errors: tuple[type[Exception], ...] = (), batch_name: str) -> list[Delivery]:
    """One delivery per message, sent through an AMQP SDK's batches (Event Hubs, Service Bus): grouped per twin
    (``new_batch`` gets the partition key), each group in as few batches as the size limit allows.

    ``add`` raises ``full`` when the message does not fit; a message too large for an empty batch is REJECTED
    (MESSAGE_TOO_LARGE). A send raising one of ``refused_errors`` rejects that batch's messages (the service refused
    them); ``unavailable_errors`` stops the run and every message not yet sent becomes RETRY."""
    deliveries: list[Delivery | None] = [None] * len(messages)

    def fits(batch: SB, message: M) -> bool:
        try:
            add(batch, message)
        except full:
            return False
        return True

    def ship(batch: SB, pending: list[int]) -> None:
        try:
            send(batch)
        except refused_errors as exc:
            for i in pending:
                deliveries[i] = Delivery(Status.REJECTED, PermanentError(Code.DELIVERY_REJECTED, str(exc)))
            return
        for i in pending:
            deliveries[i] = SENT

    def too_large(i: int, batch: SB) -> None:
        deliveries[i] = Delivery(Status.REJECTED, PermanentError.at(
            Code.MESSAGE_TOO_LARGE, "data", f"larger than {batch_name} ({batch.max_size_in_bytes} bytes)"))

    try:
        for key, indexes in by_partition(messages).items():
            fill_batches(indexes, lambda i: build(messages[i]), partial(new_batch, key), fits, ship, too_large)
    except unavailable_errors as exc:
        return fail_rest(deliveries, unavailable(endpoint, exc))
    return [d if d is not None else SENT for d in deliveries]
