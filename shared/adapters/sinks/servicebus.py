"""Service Bus sink (azure-servicebus): CloudEvents AMQP binding, ``message_id`` = notification id + route.

``message_id`` makes Service Bus duplicate detection drop a resend (e.g. after a crash between send and
forwarding record). With ``sessions: true`` the session id is the twin id, so a session-enabled queue or
subscription hands one twin's changes to one receiver in order. Messages are grouped per twin and batched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from azure.servicebus import ServiceBusClient, ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus.exceptions import MessageSizeExceededError, ServiceBusError

from shared.adapters.sinks.common import amqp_binding, amqp_client, send_in_batches
from shared.egress.config import ServiceBusEndpoint
from shared.egress.ports import Delivery, Outgoing


class Sender(Protocol):
    """The ServiceBusSender methods this sink uses."""

    def create_message_batch(self) -> ServiceBusMessageBatch: ...

    def send_messages(self, message: ServiceBusMessageBatch) -> None: ...

    def close(self) -> None: ...


def to_message(message: Outgoing, sessions: bool) -> ServiceBusMessage:
    body, props, content_type = amqp_binding(message.event)
    return ServiceBusMessage(body, application_properties=props, message_id=message.message_id,
                             session_id=message.partition_key if sessions else None, content_type=content_type)


class ServiceBusSink:
    def __init__(self, name: str, sender: Sender, *, sessions: bool = False, client: Any = None) -> None:
        self.name = name
        self.sender = sender
        self.sessions = sessions
        self._client = client

    @classmethod
    def from_endpoint(cls, name: str, endpoint: ServiceBusEndpoint, env: Mapping[str, str]) -> ServiceBusSink:
        client = amqp_client(name, endpoint.connection_setting, endpoint.namespace, env,
                             by_connection=ServiceBusClient.from_connection_string, by_identity=ServiceBusClient)
        # The config holds exactly one of topic and queue (ServiceBusEndpoint._one_entity).
        sender = (client.get_topic_sender(endpoint.topic) if endpoint.topic is not None
                  else client.get_queue_sender(str(endpoint.queue)))
        return cls(name, sender, sessions=endpoint.sessions, client=client)

    def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        # Service Bus batches carry no partition key: grouping per twin only keeps each twin's messages together.
        return send_in_batches(
            self.name, messages, build=lambda message: to_message(message, self.sessions),
            new_batch=lambda _key: self.sender.create_message_batch(),
            add=lambda batch, message: batch.add_message(message), full=MessageSizeExceededError,
            send=self.sender.send_messages, unavailable_errors=ServiceBusError,
            batch_name="a Service Bus batch")

    def close(self) -> None:
        self.sender.close()
        if self._client is not None:
            self._client.close()

