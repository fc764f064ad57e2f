"""The post-deploy smoke test, against a fake function endpoint and a fake ADT data plane (responses)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
import responses

from shared.adapters.twins.adt import AdtTwinStore
from shared.ingest.validation import read_envelope, validate_event
from tests.support import event_factory as factory
from tests.support.fake_adt import FakeCredential
from twinbridge.cli import build_parser
from twinbridge.commands import smoke

APP = "https://tb-func.azurewebsites.net"
ADT = "https://tb-adt.api.weu.digitaltwins.azure.net"


def _args(*extra: str) -> Any:
    return build_parser().parse_args(["smoke", "--function-url", APP, "--adt-url", ADT, "--topic", factory.TOPIC,
                                      "--device", "smoke-1", "--timeout", "1", "--poll-interval", "0.01", *extra])


def test_the_smoke_events_are_valid_iot_hub_events() -> None:
    for event in smoke.smoke_events(factory.TOPIC, "smoke-1"):
        validated = validate_event(event, read_envelope(event))
        assert validated.device_id == "smoke-1"


@responses.activate
def test_sends_with_the_system_key_and_waits_for_the_twin(monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(smoke.KEY_VARIABLE, "system-key-value")
    posted: list[Any] = []

    def accept(request: Any) -> tuple[int, dict[str, str], str]:
        posted.append(request)
        return 202, {}, ""

    responses.add_callback(responses.POST, f"{APP}/runtime/webhooks/eventgrid", callback=accept)
    twin_url = f"{ADT}/digitaltwins/smoke-1"
    responses.add(responses.GET, twin_url, status=404, json={"error": {"code": "DigitalTwinNotFound", "message": ""}})
    twin = {"$dtId": "smoke-1", "$etag": 'W/"2"', "connectionState": "Connected",
            "$metadata": {"$model": "dtmi:twinbridge:IoTDevice;1"}}
    responses.add(responses.GET, twin_url, json=twin)
    responses.add(responses.GET, f"{twin_url}/relationships", json={"value": []})
    responses.add(responses.GET, f"{twin_url}/incomingrelationships", json={"value": []})
    responses.add(responses.DELETE, twin_url, status=204)

    code = smoke.run(_args("--cleanup"), twins=AdtTwinStore.from_url(ADT, FakeCredential()))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "OK twin smoke-1 Connected (dtmi:twinbridge:IoTDevice;1)" in out and "deleted twin smoke-1" in out
    assert [json.loads(r.body)[0]["eventType"] for r in posted] == [
        "Microsoft.Devices.DeviceCreated", "Microsoft.Devices.DeviceConnected"]
    query = parse_qs(urlparse(posted[0].url).query)
    assert query == {"functionName": ["ingest_iothub_events"], "code": ["system-key-value"]}
    assert posted[0].headers["aeg-event-type"] == "Notification"
    assert any(c.request.method == "DELETE" for c in responses.calls)


@responses.activate
def test_fails_when_the_twin_never_appears(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(smoke.KEY_VARIABLE, "k")
    responses.add(responses.POST, f"{APP}/runtime/webhooks/eventgrid", status=202)
    responses.add(responses.GET, f"{ADT}/digitaltwins/smoke-1", status=404,
                  json={"error": {"code": "DigitalTwinNotFound", "message": ""}})
    assert smoke.run(_args(), twins=AdtTwinStore.from_url(ADT, FakeCredential())) == 1
    assert "FAIL twin smoke-1 missing" in capsys.readouterr().err


@responses.activate
def test_a_refused_key_stops_before_polling(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(smoke.KEY_VARIABLE, "wrong")
    responses.add(responses.POST, f"{APP}/runtime/webhooks/eventgrid", status=401)
    assert smoke.run(_args(), twins=AdtTwinStore.from_url(ADT, FakeCredential())) == 1
    assert "answered 401" in capsys.readouterr().err


def test_the_key_comes_from_the_environment_only(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(smoke.KEY_VARIABLE, raising=False)
    assert smoke.run(_args()) == 2
    assert smoke.KEY_VARIABLE in capsys.readouterr().err
