"""Event Hubs sink (azure-eventhub): CloudEvents AMQP binding, partition key = twin id, batched per twin.

A batch carries one partition key, so messages are grouped by twin (each twin's messages keep their order and
land in one partition, where Event Hubs keeps them ordered) and every group is filled into as few batches as the
size limit allows. Authentication: ``DefaultAzureCredential`` with the fully qualified namespace (managed
identity in Azure); a connection string from an app setting only for local runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from azure.eventhub import EventData, EventDataBatch, EventHubProducerClient
from azure.eventhub.exceptions import EventDataError, EventHubError

from shared.adapters.sinks.common import amqp_binding, amqp_client, send_in_batches
from shared.egress.config import EventHubEndpoint
from shared.egress.ports import Delivery, Outgoing


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
        return cls(name, amqp_client(
            name, endpoint.connection_setting, endpoint.namespace, env,
            by_connection=lambda conn: EventHubProducerClient.from_connection_string(conn,
                                                                                      eventhub_name=endpoint.eventhub),
            by_identity=lambda namespace, credential: EventHubProducerClient(namespace, endpoint.eventhub,
                                                                             credential)))

    def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        return send_in_batches(
            self.name, messages, build=to_event_data,
            new_batch=lambda key: self.producer.create_batch(partition_key=key),
            add=lambda batch, data: batch.add(data), full=ValueError,  # what EventDataBatch.add raises when full
            send=self.producer.send_batch, unavailable_errors=EventHubError,
            refused_errors=(EventDataError,),  # the service refused these events themselves
            batch_name="an Event Hubs batch")

    def close(self) -> None:
        self.producer.close()

