"""Event Grid sink through the real EventGridPublisherClient, HTTP faked with ``responses``."""

from __future__ import annotations

import orjson
import pytest
import responses
from azure.core.credentials import AzureKeyCredential
from azure.eventgrid import EventGridPublisherClient

from shared.adapters.sinks.eventgrid import EventGridSink
from shared.egress.config import EventGridEndpoint
from shared.egress.notifications import read_notification
from shared.egress.ports import Outgoing, Status
from shared.errors import Code
from tests.egress import adt

ENDPOINT = "https://adt-maps.westeurope-1.eventgrid.azure.net/api/events"
KEY = "test-key-not-a-secret"


def _outgoing(n: int = 2) -> list[Outgoing]:
    out = []
    for i in range(n):
        ce = adt.twin_update(f"room-{i}", [adt.replace("/T", i)], nid=f"n{i}", second=i + 0.5)
        out.append(Outgoing(f"k{i}", "maps", ce["id"], f"n{i}:maps", f"room-{i}", read_notification(ce).cloudevent))
    return out


def _sink(schema: str = "cloudevents") -> EventGridSink:
    endpoint = EventGridEndpoint.model_validate({"kind": "eventgrid", "endpoint": ENDPOINT, "schema": schema,
                                                 "key_setting": "EG_KEY"})
    return EventGridSink.from_endpoint("maps", endpoint, {"EG_KEY": KEY}, retry_total=0)


@responses.activate
def test_cloudevents_batch_with_key_header_and_content_type() -> None:
    responses.add(responses.POST, ENDPOINT, status=200)
    deliveries = _sink().send(_outgoing())
    assert [d.status for d in deliveries] == [Status.SENT, Status.SENT]
    request = responses.calls[0].request
    assert request.headers["aeg-sas-key"] == KEY
    assert request.headers["Content-Type"] == "application/cloudevents-batch+json; charset=utf-8"
    body = orjson.loads(request.body)
    assert [e["id"] for e in body] == ["n0", "n1"]
    assert body[0]["type"] == "Microsoft.DigitalTwins.Twin.Update" and body[0]["source"] == adt.SOURCE
    assert body[0]["subject"] == "room-0" and body[0]["traceparent"] == adt.TRACEPARENT
    assert body[0]["data"] == {"modelId": adt.ROOM, "patch": [adt.replace("/T", 0)]}
    assert body[0]["time"].startswith("2026-11-23T10:00:00.5")


@responses.activate
def test_eventgrid_schema() -> None:
    responses.add(responses.POST, ENDPOINT, status=200)
    _sink("eventgrid").send(_outgoing(1))
    request = responses.calls[0].request
    assert request.headers["Content-Type"] == "application/json; charset=utf-8"
    assert "api-version=2018-01-01" in request.url
    [event] = orjson.loads(request.body)
    assert (event["eventType"], event["subject"], event["id"], event["dataVersion"]) == (
        "Microsoft.DigitalTwins.Twin.Update", "room-0", "n0", "1.0")
    assert event["data"]["modelId"] == adt.ROOM


@responses.activate
def test_a_refused_batch_is_split_so_only_the_bad_event_is_rejected() -> None:
    def reply(request: object) -> tuple[int, dict[str, str], str]:
        events = orjson.loads(request.body)  # type: ignore[attr-defined]
        bad = any(e["id"] == "n1" for e in events)
        return (400, {}, '{"error": {"code": "BadRequest", "message": "invalid event"}}') if bad else (200, {}, "")

    responses.add_callback(responses.POST, ENDPOINT, callback=reply)
    deliveries = _sink().send(_outgoing(3))
    assert [d.status for d in deliveries] == [Status.SENT, Status.REJECTED, Status.SENT]
    assert deliveries[1].error is not None and deliveries[1].error.code is Code.DELIVERY_REJECTED
    assert [len(orjson.loads(c.request.body)) for c in responses.calls] == [3, 1, 1, 1]


@pytest.mark.parametrize("status", [401, 429, 503])
@responses.activate
def test_throttling_outage_and_auth_are_retried_not_blamed_on_the_message(status: int) -> None:
    responses.add(responses.POST, ENDPOINT, status=status)
    deliveries = _sink().send(_outgoing(2))
    assert {d.status for d in deliveries} == {Status.RETRY}
    assert deliveries[0].error is not None and deliveries[0].error.code is Code.SINK_UNAVAILABLE


def test_entra_credential_when_no_key_setting() -> None:
    endpoint = EventGridEndpoint.model_validate({"kind": "eventgrid", "endpoint": ENDPOINT})
    sink = EventGridSink.from_endpoint("maps", endpoint, {})
    assert isinstance(sink.client, EventGridPublisherClient)
    assert not isinstance(sink.client._credential, AzureKeyCredential)
