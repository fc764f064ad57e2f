"""What the sinks share: the CloudEvents AMQP binding, settings lookup, and the 'stop after a failure' rule."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import orjson

from shared.egress.ports import Delivery, Outgoing, Status
from shared.errors import Code, ConfigError, Problem, TransientError

B = TypeVar("B")  # an SDK batch
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
