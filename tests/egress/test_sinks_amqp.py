"""Event Hubs and Service Bus sinks: real EventData / ServiceBusMessage objects, handed to fake producer/sender
objects that implement only the methods the sinks call (the SDKs speak AMQP, so HTTP fakes cannot see them)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from azure.eventhub import EventData, EventDataBatch
from azure.eventhub.exceptions import ConnectionLostError, EventDataError
from azure.servicebus import ServiceBusMessage, ServiceBusMessageBatch
from azure.servicebus.exceptions import ServiceBusServerBusyError

from shared.adapters.sinks.eventhub import EventHubSink
from shared.adapters.sinks.servicebus import ServiceBusSink
from shared.egress.config import load_egress
from shared.egress.notifications import read_notification
from shared.egress.ports import Outgoing, Status
from shared.egress.router import match
from shared.errors import Code
from tests.egress import adt


class RecordingBatch(EventDataBatch):
    """A real EventDataBatch (its size accounting decides when it is full) that also keeps what was added."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.events: list[EventData] = []

    def add(self, event_data: Any) -> None:
        super().add(event_data)
        self.events.append(event_data)


class FakeProducer:
    def __init__(self, max_size: int | None = None, fail_on_send: int | None = None,
                 refuse_send: int | None = None) -> None:
        self.max_size = max_size
        self.fail_on_send = fail_on_send
        self.refuse_send = refuse_send  # the n-th send_batch call is refused by the service (EventDataError)
        self.calls = 0
        self.sent: list[RecordingBatch] = []
        self.closed = False

    def create_batch(self, *, partition_key: str | None = None) -> EventDataBatch:
        return RecordingBatch(partition_key=partition_key, max_size_in_bytes=self.max_size)

    def send_batch(self, event_data_batch: EventDataBatch) -> None:
        self.calls += 1
        if self.refuse_send == self.calls - 1:
            raise EventDataError("the service refused these events")
        if self.fail_on_send is not None and len(self.sent) == self.fail_on_send:
            raise ConnectionLostError("link detached")
        assert isinstance(event_data_batch, RecordingBatch)
        self.sent.append(event_data_batch)

    def close(self) -> None:
        self.closed = True


def _messages(transform: str = "passthrough") -> list[Outgoing]:
    egress = load_egress({"endpoints": {"x": {"kind": "file", "path": "x"}},
                          "routes": [{"name": "r", "filter": "true", "endpoint": "x", "transform": transform}]})
    events = [adt.twin_update("room-1", [adt.replace("/T", 1)], nid="n1", second=1),
              adt.twin_update("room-2", [adt.replace("/T", 2)], nid="n2", second=2),
              adt.twin_update("room-1", [adt.replace("/T", 3)], nid="n3", second=3)]
    out: list[Outgoing] = []
    for event in events:
        out.extend(match(egress, read_notification(event))[1])
    return out


def _props(data: EventData | ServiceBusMessage) -> dict[str, Any]:
    raw = data.properties if isinstance(data, EventData) else data.application_properties
    assert raw is not None
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
            for k, v in raw.items()}


def test_event_hubs_partition_key_is_the_twin_and_cloudevents_ride_in_properties() -> None:
    producer = FakeProducer()
    messages = _messages()
    deliveries = EventHubSink("timeseries", producer).send(messages)
    assert [d.status for d in deliveries] == [Status.SENT] * 3
    assert [(b._partition_key, [e.message_id for e in b.events]) for b in producer.sent] == [
        ("room-1", ["n1:r", "n3:r"]), ("room-2", ["n2:r"])]  # grouped per twin, each twin in order
    first = producer.sent[0].events[0]
    assert _props(first) == {"cloudEvents:specversion": "1.0", "cloudEvents:id": "n1", "cloudEvents:source": adt.SOURCE,
                             "cloudEvents:type": "Microsoft.DigitalTwins.Twin.Update", "cloudEvents:subject": "room-1",
                             "cloudEvents:time": messages[0].event["time"], "cloudEvents:traceparent": adt.TRACEPARENT}
    assert first.content_type == "application/json"
    assert orjson.loads(first.body_as_str()) == {"modelId": adt.ROOM, "patch": [adt.replace("/T", 1)]}


def test_event_hubs_full_batches_are_split_and_an_oversized_event_is_rejected() -> None:
    producer = FakeProducer(max_size=700)
    messages = _messages()
    big = Outgoing("k-big", "r", "big", "big:r", "room-1", {**messages[0].event, "id": "big", "data": "x" * 2000})
    deliveries = EventHubSink("timeseries", producer).send([*messages, big])
    assert [d.status for d in deliveries] == [Status.SENT] * 3 + [Status.REJECTED]
    assert deliveries[3].error is not None and deliveries[3].error.code is Code.MESSAGE_TOO_LARGE
    sizes = [len(b.events) for b in producer.sent]
    assert sum(sizes) == 3 and len(producer.sent) >= 3  # 700 bytes hold one event: one batch each
    assert [b._partition_key for b in producer.sent] == ["room-1", "room-1", "room-2"]


def test_a_refused_batch_rejects_its_events_only_and_the_next_batch_still_goes() -> None:
    producer = FakeProducer(max_size=700, refuse_send=0)  # one event per batch; the first batch is refused
    deliveries = EventHubSink("timeseries", producer).send(_messages())
    assert [d.status for d in deliveries] == [Status.REJECTED, Status.SENT, Status.SENT]
    assert [e.message_id for b in producer.sent for e in b.events] == ["n3:r", "n2:r"]  # room-1's next, then room-2


def test_event_hubs_failure_stops_and_marks_the_rest_retry() -> None:
    producer = FakeProducer(fail_on_send=1)
    deliveries = EventHubSink("timeseries", producer).send(_messages())
    assert [d.status for d in deliveries] == [Status.SENT, Status.RETRY, Status.SENT]  # room-1 batch went first
    assert deliveries[1].error is not None and deliveries[1].error.code is Code.SINK_UNAVAILABLE


class FakeSender:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[list[ServiceBusMessage]] = []
        self._batches: list[tuple[ServiceBusMessageBatch, list[ServiceBusMessage]]] = []

    def create_message_batch(self) -> ServiceBusMessageBatch:
        recorded: list[ServiceBusMessage] = []
        batch = ServiceBusMessageBatch(max_size_in_bytes=262_144)
        original = batch.add_message

        def add_message(message: ServiceBusMessage) -> None:
            original(message)
            recorded.append(message)

        batch.add_message = add_message  # type: ignore[method-assign]
        self._batches.append((batch, recorded))
        return batch

    def send_messages(self, message: ServiceBusMessageBatch) -> None:
        if self.fail:
            raise ServiceBusServerBusyError(message="busy")
        self.sent.append(next(r for b, r in self._batches if b is message))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("sessions", [False, True])
def test_service_bus_message_id_session_and_cloudevents_properties(sessions: bool) -> None:
    sender = FakeSender()
    deliveries = ServiceBusSink("workflow", sender, sessions=sessions).send(_messages("property-changes"))
    assert [d.status for d in deliveries] == [Status.SENT] * 3
    sent = [m for batch in sender.sent for m in batch]
    assert [m.message_id for m in sent] == ["n1:r:0", "n3:r:0", "n2:r:0"]
    assert [m.session_id for m in sent] == (["room-1", "room-1", "room-2"] if sessions else [None] * 3)
    props = _props(sent[0])
    assert props["cloudEvents:type"] == "twinbridge.PropertyChange" and props["cloudEvents:id"] == "n1:0"
    assert props["cloudEvents:subject"] == "room-1" and props["cloudEvents:source"] == adt.SOURCE
    assert sent[0].content_type == "application/json"
    assert orjson.loads(str(sent[0]))["property"] == "/T"


def test_service_bus_unavailable_is_retry() -> None:
    deliveries = ServiceBusSink("workflow", FakeSender(fail=True)).send(_messages())
    assert {d.status for d in deliveries} == {Status.RETRY}


CONNECTION = "Endpoint=sb://local.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"


def test_sinks_are_built_from_a_connection_setting_or_refuse_an_endpoint_without_one() -> None:
    """from_endpoint: the connection string from the named app setting (the SDK clients connect lazily); a setting
    that is not set, or neither namespace nor connection_setting, is a ConfigError naming the field."""
    from shared.egress.config import EventHubEndpoint, ServiceBusEndpoint
    from shared.errors import ConfigError

    hub = EventHubSink.from_endpoint("hub", EventHubEndpoint(kind="eventhub", eventhub="h", connection_setting="C"),
                                     {"C": CONNECTION})
    queue = ServiceBusSink.from_endpoint("q", ServiceBusEndpoint(kind="servicebus", queue="q", connection_setting="C"),
                                         {"C": CONNECTION})
    assert hub.producer.eventhub_name == "h" and queue.sender.entity_name == "q"
    hub.close()
    queue.close()
    with pytest.raises(ConfigError, match="C: app setting is not set"):
        ServiceBusSink.from_endpoint("q", ServiceBusEndpoint(kind="servicebus", topic="t", connection_setting="C"), {})
    with pytest.raises(ConfigError, match="namespace: give namespace or connection_setting"):
        EventHubSink.from_endpoint("hub", EventHubEndpoint(kind="eventhub", eventhub="h"), {})
