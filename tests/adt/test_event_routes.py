"""``adt serve --endpoints``: event routes deliver ADT's notifications to webhooks (Event Grid schema with the
subscription validation handshake, CloudEvents with the OPTIONS handshake) and JSON Lines files — filtered by each
route's filter, at least once with retries, in order per twin — driven through the real ``DigitalTwinsClient``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest
from azure.digitaltwins.core import DigitalTwinsEventRoute

from tests.adt.conftest import Emulator, start_emulator
from twinbridge.adt.endpoints import Endpoint, EndpointsError, parse_endpoints

pytestmark = pytest.mark.integration

ROOM = "dtmi:test:routes:Room;1"
MODEL = {"@id": ROOM, "@type": "Interface", "@context": "dtmi:dtdl:context;3",
         "contents": [{"@type": "Property", "name": "n", "schema": "integer"},
                      {"@type": "Relationship", "name": "next"}]}


class Receiver:
    """A webhook that answers 500 to the first ``fail_first`` notification requests (then 200), 400 to events whose
    twin is ``refuse``, and records what it accepted, with its headers."""

    def __init__(self, fail_first: int = 0, refuse: str | None = None) -> None:
        self.accepted: list[tuple[dict[str, str], Any]] = []
        self.handshakes: list[str] = []
        self.failures_left = fail_first
        self.refuse = refuse
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_OPTIONS(self) -> None:  # CloudEvents webhook abuse protection
                receiver.handshakes.append("options")
                origin = self.headers.get("WebHook-Request-Origin", "")
                self._answer(200, headers={"WebHook-Allowed-Origin": origin, "Allow": "POST"})

            def do_POST(self) -> None:
                body = orjson.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                if self.headers.get("aeg-event-type") == "SubscriptionValidation":
                    receiver.handshakes.append("validation")
                    code = body[0]["data"]["validationCode"]
                    self._answer(200, orjson.dumps({"validationResponse": code}), {"Content-Type": "application/json"})
                    return
                with receiver.lock:
                    event = body[0] if isinstance(body, list) else body
                    subject = str(event.get("subject", ""))
                    if receiver.refuse is not None and subject == receiver.refuse:
                        self._answer(400)
                        return
                    if receiver.failures_left > 0:
                        receiver.failures_left -= 1
                        self._answer(500)
                        return
                    receiver.accepted.append((dict(self.headers.items()), body))
                self._answer(200)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/notifications"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receivers() -> Iterator[dict[str, Receiver]]:
    found = {"grid": Receiver(fail_first=5, refuse="poison"), "cloud": Receiver()}
    yield found
    for receiver in found.values():
        receiver.stop()


@pytest.fixture(scope="module")
def routed(tmp_path_factory: pytest.TempPathFactory, receivers: dict[str, Receiver]) -> Iterator[tuple[Emulator,
                                                                                                       Path]]:
    folder = tmp_path_factory.mktemp("routes")
    endpoints = {"grid": {"kind": "webhook", "url": receivers["grid"].url, "schema": "eventgrid", "lanes": 3,
                          "deadletter": "deadletter.jsonl"},
                 "cloud": {"kind": "webhook", "url": receivers["cloud"].url, "schema": "cloudevents"},
                 "file": {"kind": "jsonl", "path": "all.jsonl", "schema": "amqp"}}
    (folder / "endpoints.json").write_bytes(orjson.dumps({"endpoints": endpoints}))
    running = start_emulator(folder / "tls", "--endpoints", str(folder / "endpoints.json"))
    yield running, folder
    running.stop()


def _wait(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_routes_deliver_in_order_per_twin_through_retries_and_validation(
        routed: tuple[Emulator, Path], receivers: dict[str, Receiver]) -> None:
    emulator, folder = routed
    client = emulator.client()
    client.create_models([MODEL])
    client.upsert_event_route("updates", DigitalTwinsEventRoute(
        endpoint_name="grid", filter="type = 'Microsoft.DigitalTwins.Twin.Update'"))
    client.upsert_event_route("lifecycle", DigitalTwinsEventRoute(
        endpoint_name="cloud", filter="type = 'Microsoft.DigitalTwins.Twin.Create' OR "
                                      "type = 'Microsoft.DigitalTwins.Relationship.Create'"))
    client.upsert_event_route("everything", DigitalTwinsEventRoute(endpoint_name="file", filter="true"))
    twins = [f"t{i}" for i in range(4)]
    for twin in [*twins, "poison"]:
        client.upsert_digital_twin(twin, {"$metadata": {"$model": ROOM}, "n": 0})
    for n in range(1, 11):
        for twin in twins:
            client.update_digital_twin(twin, [{"op": "replace", "path": "/n", "value": n}])
    client.update_digital_twin("poison", [{"op": "replace", "path": "/n", "value": 1}])
    client.upsert_relationship("t0", "t0-next", {"$targetId": "t1", "$relationshipName": "next"})
    client.publish_telemetry("t0", {"n": 99}, message_id="m-1")

    grid, cloud = receivers["grid"], receivers["cloud"]
    _wait(lambda: len(grid.accepted) == 40 and len(cloud.accepted) == 6)
    # Event Grid schema: validated once before the first delivery, one event per request, Event Grid's headers
    assert grid.handshakes == ["validation"] and cloud.handshakes == ["options"]
    for headers, body in grid.accepted:
        assert isinstance(body, list) and len(body) == 1 and body[0]["eventType"].endswith("Twin.Update")
        assert headers["aeg-event-type"] == "Notification"
        assert headers["Content-Type"].startswith("application/json")
    # in order per twin, though 5 deliveries failed first (retried) and lanes run in parallel
    for twin in twins:
        values = [b[0]["data"]["data"]["patch"][0]["value"] for _, b in grid.accepted if b[0]["subject"] == twin]
        assert values == list(range(1, 11)), (twin, values)
    assert sum(int(h["aeg-delivery-count"]) for h, _ in grid.accepted) == 5
    # 400 is not retried (Event Grid dead-letters it)
    dead = [orjson.loads(line) for line in (folder / "deadletter.jsonl").read_bytes().splitlines()]
    assert [d["event"]["subject"] for d in dead] == ["poison"] and dead[0]["deliveryAttempts"] == 1
    # CloudEvents endpoint: structured mode, only what its route's filter selects
    kinds = sorted(body["type"].rsplit(".", 2)[-2] + "." + body["type"].rsplit(".", 1)[-1] for _, body in
                   cloud.accepted)
    assert kinds == ["Relationship.Create"] + ["Twin.Create"] * 5
    assert all(h["Content-Type"].startswith("application/cloudevents+json") for h, _ in cloud.accepted)
    # the JSON Lines endpoint in the AMQP form got everything, telemetry included (its id is the Message-Id)
    lines = [orjson.loads(line) for line in (folder / "all.jsonl").read_bytes().splitlines()]
    assert len(lines) == 5 + 41 + 1 + 1
    telemetry = [line for line in lines if line["properties"]["cloudEvents:type"] == "microsoft.iot.telemetry"]
    source = emulator.url.removeprefix("https://")
    assert telemetry == [{"properties": {"cloudEvents:id": "m-1", "cloudEvents:source": f"{source}/digitaltwins/t0",
                                         "cloudEvents:specversion": "1.0",
                                         "cloudEvents:type": "microsoft.iot.telemetry",
                                         "cloudEvents:dataschema": ROOM,
                                         "cloudEvents:traceparent": telemetry[0]["properties"][
                                             "cloudEvents:traceparent"]},
                          "body": {"n": 99}}]
    assert client.get_digital_twin("t3")["n"] == 10


def test_a_request_traceparent_carries_into_the_notifications(routed: tuple[Emulator, Path]) -> None:
    emulator, folder = routed
    client = emulator.client()
    trace = "0af7651916cd43dd8448eb211c80319c"
    client.update_digital_twin("t1", [{"op": "replace", "path": "/n", "value": 42}],
                               headers={"traceparent": f"00-{trace}-b7ad6b7169203331-01"})

    def found() -> list[dict[str, Any]]:
        lines = [orjson.loads(line) for line in (folder / "all.jsonl").read_bytes().splitlines()]
        return [line for line in lines if line["body"].get("patch", [{}])[0].get("value") == 42]

    _wait(lambda: bool(found()))
    parent = found()[0]["properties"]["cloudEvents:traceparent"]
    assert parent.startswith(f"00-{trace}-") and parent != f"00-{trace}-b7ad6b7169203331-01"


@pytest.mark.parametrize(("document", "message"), [
    ({"a": {"kind": "webhook", "url": "ftp://x"}}, "a.url"),
    ({"a": {"kind": "webhook", "url": "http://x", "schema": "amqp"}}, "a.schema"),
    ({"a": {"kind": "jsonl"}}, "a.path"),
    ({"a": {"kind": "queue"}}, "a.kind"),
    ({"a": {"kind": "webhook", "url": "http://x", "lanes": 0}}, "a.lanes"),
    ({"a": {"kind": "webhook", "url": "http://x", "max_attempts": True}}, "a.max_attempts"),
    ({"a": {"kind": "webhook", "url": "http://x", "timeout": "soon"}}, "a.timeout"),
    ({"a": {"kind": "webhook", "url": "http://x", "timeout": 0}}, "a.timeout"),
    ({"a": {"kind": "webhook", "url": "http://x", "secret": "y"}}, "unknown"),
    ([1, 2], "JSON object"),
])
def test_bad_endpoint_files_are_refused_with_the_field(document: Any, message: str) -> None:
    with pytest.raises(EndpointsError, match=message):
        parse_endpoints(document)


def test_what_an_endpoint_file_leaves_out_takes_the_endpoints_defaults() -> None:
    parsed = parse_endpoints({"a": {"kind": "webhook", "url": "http://x"},
                              "b": {"kind": "webhook", "url": "http://y", "lanes": 2, "max_attempts": 5,
                                    "timeout": 3, "validate": False, "topic": "t"}})
    assert parsed["a"] == Endpoint("a", "webhook", "eventgrid", url="http://x")
    assert parsed["b"] == Endpoint("b", "webhook", "eventgrid", url="http://y", lanes=2, max_attempts=5, timeout=3.0,
                                   validate=False, topic="t")


def test_duplicate_redelivers_a_fraction_and_parses(tmp_path: Path) -> None:
    from shared.adapters.twins.embedded import TwinGraph
    from twinbridge.adt.endpoints import RouteDispatcher

    endpoints = parse_endpoints({"f": {"kind": "jsonl", "path": "out.jsonl", "duplicate": 0.5}}, tmp_path)
    graph = TwinGraph()
    dispatcher = RouteDispatcher(graph, endpoints, "127.0.0.1:1")
    graph.add_models([MODEL])
    graph.put_event_route("all", {"endpointName": "f", "filter": "true"})
    for i in range(40):
        graph.put_twin(f"d{i}", {"$metadata": {"$model": ROOM}})
    assert dispatcher.drain(10)
    ids = [orjson.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    twice = dispatcher.snapshot()["endpoints"]["f"]["duplicated"]
    assert 5 < twice < 35 and len(ids) == 40 + twice and len(set(ids)) == 40
    with pytest.raises(EndpointsError, match="duplicate"):
        parse_endpoints({"f": {"kind": "jsonl", "path": "x", "duplicate": 2}})


def test_bodies_are_what_get_returns(tmp_path: Path) -> None:
    """Learn: Twin.Create carries the twin as GET returns it, Twin.Delete the twin before deletion,
    Relationship.Create/Delete the relationship as GET returns it, Update {modelId, patch}."""
    from shared.adapters.twins.embedded import TwinGraph
    from twinbridge.adt.endpoints import RouteDispatcher

    endpoints = parse_endpoints({"f": {"kind": "jsonl", "path": "out.jsonl"}}, tmp_path)
    graph = TwinGraph()
    dispatcher = RouteDispatcher(graph, endpoints, "127.0.0.1:1")
    graph.add_models([MODEL])
    graph.put_event_route("all", {"endpointName": "f", "filter": "true"})
    graph.put_twin("a", {"$metadata": {"$model": ROOM}, "n": 1})
    created = graph.get_twin("a")
    graph.put_twin("b", {"$metadata": {"$model": ROOM}})
    graph.put_relationship("a", "ab", {"$targetId": "b", "$relationshipName": "next"})
    relationship = graph.get_relationship("a", "ab")
    graph.patch_twin("a", [{"op": "replace", "path": "/n", "value": 2}])
    before_delete = graph.get_twin("a")
    graph.delete_relationship("a", "ab")
    graph.delete_twin("a")
    assert dispatcher.drain(10)
    events = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    by_type: dict[str, Any] = {}
    for event in events:  # the first of each type
        by_type.setdefault(event["type"].removeprefix("Microsoft.DigitalTwins."), event)
    assert by_type["Twin.Create"]["data"] == created
    assert by_type["Relationship.Create"]["data"] == relationship
    assert by_type["Relationship.Delete"]["data"] == relationship
    assert by_type["Twin.Delete"]["data"] == before_delete
    assert by_type["Twin.Update"]["data"] == {"modelId": ROOM, "patch": [{"op": "replace", "path": "/n", "value": 2}]}
    assert [e["subject"] for e in events] == ["a", "b", "a/relationships/ab", "a", "a/relationships/ab", "a"]
    assert {e["source"] for e in events} == {"127.0.0.1:1"} and len({e["id"] for e in events}) == len(events)


def test_route_changes_take_effect_on_the_next_write(tmp_path: Path) -> None:
    """The dispatcher works out its routing again when the routes change (put, replaced filter, delete)."""
    from shared.adapters.twins.embedded import TwinGraph
    from twinbridge.adt.endpoints import RouteDispatcher

    endpoints = parse_endpoints({"f": {"kind": "jsonl", "path": "out.jsonl"}}, tmp_path)
    graph = TwinGraph()
    dispatcher = RouteDispatcher(graph, endpoints, "127.0.0.1:1")
    graph.add_models([MODEL])
    graph.put_twin("before", {"$metadata": {"$model": ROOM}})
    graph.put_event_route("r", {"endpointName": "f", "filter": "true"})
    graph.put_twin("routed", {"$metadata": {"$model": ROOM}})
    graph.put_event_route("r", {"endpointName": "f", "filter": "type = 'Microsoft.DigitalTwins.Twin.Delete'"})
    graph.put_twin("filtered", {"$metadata": {"$model": ROOM}})
    graph.delete_twin("routed")
    graph.delete_event_route("r")
    graph.delete_twin("filtered")
    graph.put_event_route("r", {"endpointName": "nowhere", "filter": "true"})
    graph.put_twin("unknown", {"$metadata": {"$model": ROOM}})
    assert dispatcher.drain(10)
    lines = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert [(e["type"].rsplit(".", 1)[-1], e["subject"]) for e in lines] == [("Create", "routed"), ("Delete", "routed")]
    assert dispatcher.snapshot()["endpoints"]["f"]["queued"] == 2 and dispatcher.stats["unknown_endpoint"] == 1
