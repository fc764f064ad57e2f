"""The local host over real HTTP: the real FunctionApp's Event Grid door, and a test-only app for /api and /admin."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import azure.functions as func
import orjson
import pytest
import requests
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridEvent

from shared.adapters.twins.embedded import TwinGraph
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from tests.support import event_factory as factory
from twinbridge.localhost.runtime import start_local_host
from twinbridge.localhost.server import RunningHost
from twinbridge.simulator.publisher import cloud_event_to_wire

pytestmark = pytest.mark.integration

INGEST = "ingest_iothub_events"


@pytest.fixture
def restore_env() -> Iterator[None]:
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def write_settings(path: Path, values: dict[str, str], keys: dict[str, str] | None = None) -> Path:
    path.write_bytes(orjson.dumps({"IsEncrypted": False, "Values": values, **({"Keys": keys} if keys else {})}))
    return path


@pytest.fixture
def real_host(tmp_path: Path, restore_env: None) -> Iterator[tuple[RunningHost, Path]]:
    for name in [k for k in os.environ if k.startswith("TWINBRIDGE_") or k == "ADT_URL"]:
        del os.environ[name]
    db = tmp_path / "twins.db"
    settings = write_settings(tmp_path / "local.settings.json", {
        "TWINBRIDGE_ALLOWED_TOPICS": factory.TOPIC, "TWINBRIDGE_TWIN_DB": str(db),
        "TWINBRIDGE_QUARANTINE_FILE": str(tmp_path / "quarantine.jsonl"), "TWINBRIDGE_STATE_STORE": "memory"})
    running = start_local_host(settings_path=settings, port=0, outputs_dir=tmp_path / "outputs")
    try:
        yield running, db
    finally:
        running.stop()


def webhook(host: RunningHost, function: str = INGEST) -> str:
    return f"{host.url}/runtime/webhooks/eventgrid?functionName={function}"


def sdk_event(plain: dict[str, Any]) -> EventGridEvent:
    return EventGridEvent(subject=plain["subject"], event_type=plain["eventType"], data=plain["data"],
                          data_version=plain["dataVersion"], topic=plain["topic"], id=plain["id"],
                          event_time=datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC))


def notify(url: str, body: Any, content_type: str = "application/json") -> requests.Response:
    return requests.post(url, data=orjson.dumps(body), timeout=10,
                         headers={"aeg-event-type": "Notification", "Content-Type": content_type})


def twins_in(db: Path) -> dict[str, dict[str, Any]]:
    graph = EmbeddedTwinStore(TwinGraph(db))
    try:
        return {t["$dtId"]: t for t in graph.list_twins()}
    finally:
        graph.close()


def test_notification_with_sdk_events_creates_and_updates_twins(real_host: tuple[RunningHost, Path]) -> None:
    host, db = real_host
    created = sdk_event(factory.lifecycle("dev-1"))
    connected = sdk_event(factory.connection("dev-1", 7))
    response = notify(webhook(host), [created.serialize(), connected.serialize()])
    assert response.status_code == 202, response.text
    twin = twins_in(db)["dev-1"]
    assert twin["$metadata"]["$model"] == "dtmi:twinbridge:IoTDevice;1"
    assert twin["connectionState"] == "Connected"
    stats = requests.get(f"{host.url}/admin/twinbridge/stats", timeout=10).json()
    assert stats["invocations"][INGEST] == 2  # an array is fanned out: one invocation per event
    assert stats["outcomes"]["applied"] == 2


def test_cloud_event_single_object(real_host: tuple[RunningHost, Path]) -> None:
    host, db = real_host
    plain = factory.telemetry("dev-2", {"temperature": 23.5, "humidity": 41.0}, second=3)
    cloud = CloudEvent(source=plain["topic"], type=plain["eventType"], subject=plain["subject"], data=plain["data"],
                       id=str(uuid.uuid4()))
    response = notify(webhook(host), cloud_event_to_wire(cloud), "application/cloudevents+json; charset=utf-8")
    assert response.status_code == 202, response.text
    assert twins_in(db)["dev-2"]["temperature"] == 23.5


def test_validation_handshake(real_host: tuple[RunningHost, Path]) -> None:
    host, _ = real_host
    validation = EventGridEvent(subject="", event_type="Microsoft.EventGrid.SubscriptionValidationEvent",
                                data={"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6",
                                      "validationUrl": "https://rp-eastus2.eventgrid.azure.net/x"},
                                data_version="2", topic="/subscriptions/x")
    response = requests.post(webhook(host), data=orjson.dumps([validation.serialize()]), timeout=10,
                             headers={"aeg-event-type": "SubscriptionValidation"})
    assert response.status_code == 200
    assert response.json() == {"validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"}


def test_unknown_function_is_404_and_missing_header_is_400(real_host: tuple[RunningHost, Path]) -> None:
    host, db = real_host
    body = orjson.dumps([sdk_event(factory.lifecycle("dev-3")).serialize()])
    assert notify(webhook(host, "no_such_function"), []).status_code == 404
    missing = requests.post(webhook(host), data=body, headers={"Content-Type": "application/json"}, timeout=10)
    assert missing.status_code == 400
    assert "dev-3" not in twins_in(db)
    assert requests.post(webhook(host), data=b"{not json", timeout=10,
                         headers={"aeg-event-type": "Notification"}).status_code == 400


# ---- a test-only FunctionApp: HTTP routes and keys, timers, output bindings, failures ------------------------------

calls: list[tuple[str, Any]] = []
test_app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@test_app.function_name("tick")
@test_app.timer_trigger(arg_name="timer", schedule="0 */5 * * * *")
def tick(timer: func.TimerRequest) -> None:
    calls.append(("tick", timer.past_due))


@test_app.function_name("items")
@test_app.route(route="items/{item_id:int}", methods=["GET", "PUT"])
@test_app.event_hub_output(arg_name="out", connection="EH", event_hub_name="changes")
def items(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(orjson.dumps({"id": req.route_params["item_id"], "method": req.method}).decode())
    return func.HttpResponse(orjson.dumps({"id": int(req.route_params["item_id"]), "q": req.params.get("q")}),
                             status_code=200, mimetype="application/json")


@test_app.function_name("open_door")
@test_app.route(route="open", auth_level=func.AuthLevel.ANONYMOUS)
async def open_door(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("open", status_code=200)


@test_app.function_name("broken")
@test_app.event_grid_trigger(arg_name="event")
def broken(event: func.EventGridEvent) -> None:
    calls.append(("broken", event.id))
    if event.subject == "fail":
        raise RuntimeError("transient")


@pytest.fixture
def test_host(tmp_path: Path, restore_env: None) -> Iterator[tuple[RunningHost, Path]]:
    calls.clear()
    settings = write_settings(tmp_path / "local.settings.json", {"AzureWebJobs.Disabled_thing.Disabled": "true"},
                              keys={"default": "k-default", "master": "k-master"})
    running = start_local_host(settings_path=settings, port=0, function_app=test_app, outputs_dir=tmp_path / "out",
                               with_app=False)
    try:
        yield running, tmp_path / "out"
    finally:
        running.stop()


def test_timer_through_admin(test_host: tuple[RunningHost, Path]) -> None:
    host, _ = test_host
    url = f"{host.url}/admin/functions/tick"
    assert requests.post(url, json={"input": ""}, timeout=10).status_code == 401  # a master key is configured
    response = requests.post(url, json={"input": ""}, headers={"x-functions-key": "k-master"}, timeout=10)
    assert response.status_code == 202
    assert calls == [("tick", False)]
    assert requests.post(f"{host.url}/admin/functions/nope", json={}, timeout=10,
                         headers={"x-functions-key": "k-master"}).status_code == 404


def test_http_route_params_keys_methods_and_outputs(test_host: tuple[RunningHost, Path]) -> None:
    host, outputs = test_host
    assert requests.get(f"{host.url}/api/items/42", timeout=10).status_code == 401
    ok = requests.get(f"{host.url}/api/items/42?q=x&code=k-default", timeout=10)
    assert ok.status_code == 200 and ok.json() == {"id": 42, "q": "x"}
    assert requests.get(f"{host.url}/api/items/abc?code=k-default", timeout=10).status_code == 404  # :int
    assert requests.post(f"{host.url}/api/items/42?code=k-default", timeout=10).status_code == 404  # method
    assert requests.get(f"{host.url}/api/open", timeout=10).text == "open"  # anonymous, async
    lines = (outputs / "items.out.jsonl").read_bytes().splitlines()
    assert [orjson.loads(orjson.loads(line)["value"]) for line in lines] == [{"id": "42", "method": "GET"}]


def test_fan_out_failure_is_500_for_the_batch(test_host: tuple[RunningHost, Path]) -> None:
    host, _ = test_host
    events = [EventGridEvent(subject=s, event_type="t", data={}, data_version="1", topic="/t", id=s).serialize()
              for s in ("ok-1", "fail", "ok-2")]
    response = notify(webhook(host, "BROKEN"), events)  # function names match case-insensitively
    assert response.status_code == 500
    assert sorted(c[1] for c in calls) == ["fail", "ok-1", "ok-2"]  # every event was still invoked


# ---- broken requests and slow clients (issue 15 §9): 400, never 500; no worker held by a stalled client ---------

def _raw_exchange(host: RunningHost, request: bytes, *, close_write: bool = True, wait: float = 10.0) -> bytes:
    """Send ``request`` on a real socket (then end the sending side), return what the host answers."""
    import socket

    with socket.create_connection((host.server.host, host.server.port), timeout=wait) as conn:
        conn.sendall(request)
        if close_write:
            conn.shutdown(socket.SHUT_WR)
        received = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received


def _post_head(host: RunningHost, length: int, kind: str = "Notification") -> bytes:
    return (f"POST /runtime/webhooks/eventgrid?functionName={INGEST} HTTP/1.1\r\nHost: localhost\r\n"
            f"aeg-event-type: {kind}\r\nContent-Type: application/json\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n").encode()


def test_a_body_that_ends_early_is_400(real_host: tuple[RunningHost, Path]) -> None:
    host, db = real_host
    body = orjson.dumps([sdk_event(factory.lifecycle("dev-early")).serialize()])
    answer = _raw_exchange(host, _post_head(host, len(body) + 500) + body)  # says 500 bytes more than it sends
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"Traceback" not in answer
    assert "dev-early" not in twins_in(db)


@pytest.mark.parametrize("data", ["512d38b6", 42, ["512d38b6"], None])
def test_a_validation_handshake_whose_data_is_not_an_object_is_400(real_host: tuple[RunningHost, Path],
                                                                   data: Any) -> None:
    host, _ = real_host
    event = {"id": "v1", "topic": "/subscriptions/x", "subject": "", "data": data, "dataVersion": "2",
             "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent", "eventTime": "2026-11-23T10:00:00Z"}
    for body in ([event], event, ["not an event"], []):
        response = requests.post(webhook(host), data=orjson.dumps(body), timeout=10,
                                 headers={"aeg-event-type": "SubscriptionValidation"})
        assert response.status_code == 400, (body, response.status_code, response.text)


def test_a_client_that_stalls_is_timed_out_and_the_host_goes_on(tmp_path: Path, restore_env: None) -> None:
    import time

    settings = write_settings(tmp_path / "local.settings.json", {
        "TWINBRIDGE_ALLOWED_TOPICS": factory.TOPIC, "TWINBRIDGE_TWIN_DB": str(tmp_path / "twins.db"),
        "TWINBRIDGE_QUARANTINE_FILE": str(tmp_path / "q.jsonl"), "TWINBRIDGE_STATE_STORE": "memory"})
    host = start_local_host(settings_path=settings, port=0, outputs_dir=tmp_path / "outputs", read_timeout=1.0)
    try:
        # Headers (saying 100 bytes of body), then nothing: answered 408 once the read timeout passes.
        started = time.monotonic()
        answer = _raw_exchange(host, _post_head(host, 100), close_write=False, wait=15)
        took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert took < 1.0 + 2.0, took
        # Half a request line, then nothing: the connection is closed (no request to answer).
        started = time.monotonic()
        answer = _raw_exchange(host, b"POST /runtime/webhooks/eventgrid HT", close_write=False, wait=15)
        assert time.monotonic() - started < 1.0 + 2.0
        assert not answer.startswith(b"HTTP/1.1 2")
        # Meanwhile and after, the host serves others.
        status = requests.get(f"{host.url}/admin/host/status", timeout=10)
        assert status.status_code == 200
    finally:
        host.stop()
