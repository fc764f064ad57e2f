"""The local sinks: HTTP webhook (requests, faked with ``responses``) and the JSONL file."""

from __future__ import annotations

from pathlib import Path

import orjson
import responses

from shared.adapters.sinks.jsonl_file import JsonlFileSink
from shared.adapters.sinks.webhook import WebhookSink
from shared.egress.notifications import read_notification
from shared.egress.ports import Outgoing, Status
from shared.errors import Code
from tests.egress import adt

URL = "http://127.0.0.1:8080/hook"


def _outgoing(n: int) -> list[Outgoing]:
    return [Outgoing(f"k{i}", "hook", f"n{i}", f"n{i}:hook", "room-1",
                     read_notification(adt.twin_update("room-1", [adt.replace("/T", i)], nid=f"n{i}")).cloudevent)
            for i in range(n)]


@responses.activate
def test_webhook_posts_structured_cloudevents_in_order() -> None:
    responses.add(responses.POST, URL, status=202)
    deliveries = WebhookSink(URL).send(_outgoing(2))
    assert [d.status for d in deliveries] == [Status.SENT, Status.SENT]
    assert [orjson.loads(c.request.body)["id"] for c in responses.calls] == ["n0", "n1"]
    assert responses.calls[0].request.headers["Content-Type"] == "application/cloudevents+json; charset=utf-8"


@responses.activate
def test_webhook_refusal_is_permanent_and_an_outage_stops_the_rest() -> None:
    responses.add(responses.POST, URL, status=422)
    responses.add(responses.POST, URL, status=503)
    deliveries = WebhookSink(URL).send(_outgoing(3))
    assert [d.status for d in deliveries] == [Status.REJECTED, Status.RETRY, Status.RETRY]
    assert deliveries[0].error is not None and deliveries[0].error.code is Code.DELIVERY_REJECTED
    assert len(responses.calls) == 2  # nothing sent after the outage: order per twin is kept


def test_file_sink_appends_lines(tmp_path: Path) -> None:
    sink = JsonlFileSink(tmp_path / "sub" / "out.jsonl")
    assert [d.status for d in sink.send(_outgoing(2))] == [Status.SENT, Status.SENT]
    lines = [orjson.loads(x) for x in (tmp_path / "sub" / "out.jsonl").read_bytes().splitlines()]
    assert [(x["route"], x["message_id"], x["partition_key"], x["event"]["id"]) for x in lines] == [
        ("hook", "n0:hook", "room-1", "n0"), ("hook", "n1:hook", "room-1", "n1")]
