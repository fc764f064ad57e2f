"""Event Hubs sink (azure-eventhub): CloudEvents AMQP binding, partition key = twin id, batched per twin.

A batch carries one partition key, so messages are grouped by twin (each twin's messages keep their order and
land in one partition, where Event Hubs keeps them ordered) and every group is filled into as few batches as the
size limit allows. Authentication: ``DefaultAzureCredential`` with the fully qualified namespace (managed
identity in Azure); a connection string from an app setting only for local runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, Protocol

from azure.eventhub import EventData, EventDataBatch, EventHubProducerClient
from azure.eventhub.exceptions import EventDataError, EventHubError

from shared.adapters.sinks.common import amqp_binding, by_partition, fail_rest, fill_batches, setting, unavailable
from shared.egress.config import EventHubEndpoint
from shared.egress.ports import SENT, Delivery, Outgoing, Status
from shared.errors import Code, ConfigError, PermanentError, Problem


class Producer(Protocol):
    """The two EventHubProducerClient methods this sink uses."""

    def create_batch(self, *, partition_key: str | None = None) -> EventDataBatch: ...

    def send_batch(self, event_data_batch: EventDataBatch) -> None: ...

    def close(self) -> None: ...


def to_event_data(message: Outgoing) -> EventData:
    body, props, content_type = amqp_binding(message.event)
    data = EventData(body)
    data.properties = props
    if content_type:
        data.content_type = content_type
    data.message_id = message.message_id
    return data


class EventHubSink:
    def __init__(self, name: str, producer: Producer) -> None:
        self.name = name
        self.producer = producer

    @classmethod
    def from_endpoint(cls, name: str, endpoint: EventHubEndpoint, env: Mapping[str, str]) -> EventHubSink:
        client: Any
        if endpoint.connection_setting:
            conn = setting(env, endpoint.connection_setting, name)
            client = EventHubProducerClient.from_connection_string(conn, eventhub_name=endpoint.eventhub)
        elif endpoint.namespace:
            from azure.identity import DefaultAzureCredential

            client = EventHubProducerClient(endpoint.namespace, endpoint.eventhub, DefaultAzureCredential())
        else:
            raise ConfigError(f"endpoint {name}", [Problem("namespace", "give namespace or connection_setting")])
        return cls(name, client)

    def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        deliveries: list[Delivery | None] = [None] * len(messages)

        def ship(batch: EventDataBatch, pending: list[int]) -> None:
            try:
                self.producer.send_batch(batch)
            except EventDataError as exc:  # the service refused these events themselves
                for i in pending:
                    deliveries[i] = Delivery(Status.REJECTED, PermanentError(Code.DELIVERY_REJECTED, str(exc)))
                return
            for i in pending:
                deliveries[i] = SENT

        def too_large(i: int, batch: EventDataBatch) -> None:
            deliveries[i] = Delivery(Status.REJECTED, PermanentError.at(
                Code.MESSAGE_TOO_LARGE, "data", f"larger than an Event Hubs batch ({batch.max_size_in_bytes} bytes)"))

        try:
            for key, indexes in by_partition(messages).items():
                fill_batches(indexes, lambda i: to_event_data(messages[i]),
                             partial(self.producer.create_batch, partition_key=key), _add, ship, too_large)
        except EventHubError as exc:
            return fail_rest(deliveries, unavailable(self.name, exc))
        return [d if d is not None else SENT for d in deliveries]

    def close(self) -> None:
        self.producer.close()


def _add(batch: EventDataBatch, data: EventData) -> bool:
    try:
        batch.add(data)
    except ValueError:  # the batch is full
        return False
    return True
