"""The explorer's JSON API over real HTTP, reading the ADT data plane through the real DigitalTwinsClient."""

from __future__ import annotations

import threading
import time
from typing import Any

import orjson
import pytest
import requests

from shared.doors.webhook import VALIDATION_EVENT
from tests.explorer.adt_double import AdtDouble
from tests.explorer.conftest import DEVICE, SITE, start_explorer
from twinbridge.explorer.server import RunningExplorer, _twin_ids
from twinbridge.explorer.source import credential_for, is_loopback


def get(explorer: RunningExplorer, path: str, **kwargs: Any) -> requests.Response:
    return requests.get(f"{explorer.url}{path}", timeout=10, **kwargs)


def post(explorer: RunningExplorer, path: str, body: Any, **kwargs: Any) -> requests.Response:
    return requests.post(f"{explorer.url}{path}", json=body, timeout=10, **kwargs)


def test_graph_has_every_twin_and_relationship(explorer: RunningExplorer, adt: AdtDouble) -> None:
    graph = get(explorer, "/api/graph").json()
    assert sorted(t["$dtId"] for t in graph["twins"]) == ["dev-00", "dev-01", "dev-02", "dev-03", "dev-04",
                                                          "dev-05", "site-north", "site-south"]
    assert sorted((r["$sourceId"], r["$targetId"], r["$relationshipName"]) for r in graph["relationships"])[:2] == \
        [("site-north", "dev-00", "contains"), ("site-north", "dev-01", "contains")]
    assert len(graph["relationships"]) == 6 and graph["truncated"] is False
    assert adt.queries[-2:] == ["SELECT * FROM DIGITALTWINS", "SELECT * FROM RELATIONSHIPS"]


def test_graph_follows_continuation_tokens(explorer: RunningExplorer, adt: AdtDouble) -> None:
    adt.page_size = 3  # 8 twins → 3 pages
    graph = get(explorer, "/api/graph").json()
    assert len(graph["twins"]) == 8 and len(graph["relationships"]) == 6
    assert adt.queries.count("SELECT * FROM DIGITALTWINS") >= 3


def test_twin_with_metadata_relationships_and_model(explorer: RunningExplorer, adt: AdtDouble) -> None:
    data = get(explorer, "/api/twins/dev-01").json()
    twin = data["twin"]
    assert twin["temperature"] == 21.0 and twin["$metadata"]["$model"] == DEVICE
    assert twin["$metadata"]["temperature"]["lastUpdateTime"]
    assert data["outgoing"] == []
    assert [(r["$sourceId"], r["$relationshipName"]) for r in data["incoming"]] == [("site-north", "contains")]
    assert data["model"]["id"] == DEVICE and data["model"]["model"]["@id"] == DEVICE
    site = get(explorer, "/api/twins/site-north").json()
    assert [r["$targetId"] for r in site["outgoing"]] == ["dev-00", "dev-01", "dev-02"]
    assert site["model"]["id"] == SITE


def test_missing_twin_is_a_404_with_adts_code(explorer: RunningExplorer) -> None:
    response = get(explorer, "/api/twins/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "DigitalTwinNotFound"


def test_query_pages_and_names_the_twins_it_found(explorer: RunningExplorer, adt: AdtDouble) -> None:
    text = "SELECT T FROM DIGITALTWINS T WHERE T.connectionState = 'Connected'"
    adt.answer(text, lambda: [{"T": t} for t in adt.graph.list_twins() if t.get("connectionState") == "Connected"])
    adt.page_size = 2
    first = post(explorer, "/api/query", {"query": text}).json()
    assert first["twinIds"] == ["dev-00", "dev-02"] and first["continuationToken"]
    second = post(explorer, "/api/query", {"query": text, "continuationToken": first["continuationToken"]}).json()
    assert second["twinIds"] == ["dev-04"] and second["continuationToken"] is None
    assert adt.queries[-2:] == [text, text]


def test_query_errors_come_back_with_adts_status_and_code(explorer: RunningExplorer) -> None:
    response = post(explorer, "/api/query", {"query": "SELECT nonsense"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadRequest"


@pytest.mark.parametrize(("body", "code"), [({}, "QueryMissing"), ({"query": "  "}, "QueryMissing"),
                                            ({"query": 5}, "QueryMissing"), ({"query": "x" * 8001}, "QueryTooLong"),
                                            ({"query": "S", "continuationToken": 3}, "ContinuationTokenInvalid")])
def test_query_input_is_checked(explorer: RunningExplorer, body: dict[str, Any], code: str) -> None:
    response = post(explorer, "/api/query", body)
    assert response.status_code == 400 and response.json()["error"]["code"] == code


def test_posts_must_be_json_and_same_origin(explorer: RunningExplorer) -> None:
    form = requests.post(f"{explorer.url}/api/query", data="query=SELECT", timeout=10,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 415
    cross = post(explorer, "/api/quarantine/replay", {}, headers={"Origin": "http://evil.example"})
    assert cross.status_code == 403 and cross.json()["error"]["code"] == "CrossOrigin"
    rebinding = get(explorer, "/api/graph", headers={"Host": f"evil.example:{explorer.server.port}"})
    assert rebinding.status_code == 403 and rebinding.json()["error"]["code"] == "HostNotAllowed"


def test_models(explorer: RunningExplorer) -> None:
    models = get(explorer, "/api/models").json()["value"]
    assert sorted(m["id"] for m in models) == sorted(["dtmi:twinbridge:IoTDevice;1", "dtmi:twinbridge:IoTModule;1",
                                                      SITE])


def test_page_static_files_and_cytoscape_are_served_locally(explorer: RunningExplorer) -> None:
    page = get(explorer, "/")
    assert page.status_code == 200 and 'src="/vendor/cytoscape.js"' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere
    script = get(explorer, "/static/app.js")
    assert script.status_code == 200 and "EventSource" in script.text
    assert get(explorer, "/static/../server.py").status_code == 404
    vendor = get(explorer, "/vendor/cytoscape.js")
    assert vendor.status_code == 200 and len(vendor.content) > 100_000


def read_change(explorer: RunningExplorer, deadline: float = 10.0) -> dict[str, Any]:
    with requests.get(f"{explorer.url}/api/events", stream=True, timeout=deadline) as stream:
        for line in stream.iter_lines():
            if line.startswith(b"data: "):
                change: dict[str, Any] = orjson.loads(line[6:])
                return change
    raise AssertionError("the event stream ended without a change")


def test_a_route_notification_reaches_the_event_stream(adt: AdtDouble) -> None:
    running = start_explorer(live="route")
    try:
        body = [{"id": "n1", "subject": "dev-03", "eventType": "Microsoft.DigitalTwins.Twin.Update",
                 "dataVersion": "1.0", "eventTime": "2026-11-30T10:00:00Z", "data": {"data": {
                     "modelId": DEVICE, "patch": [{"op": "replace", "path": "/temperature", "value": 5.5}]}}}]

        def deliver() -> None:
            while running.app.hub.subscribers() == 0:
                time.sleep(0.02)
            answer = requests.post(f"{running.url}/api/notifications", data=orjson.dumps(body), timeout=10,
                                   headers={"aeg-event-type": "Notification", "Content-Type": "application/json"})
            assert answer.json() == {"accepted": 1, "ignored": 0}

        threading.Thread(target=deliver, daemon=True).start()
        change = read_change(running)
        assert (change["twinId"], change["via"], change["patch"][0]["value"]) == ("dev-03", "route", 5.5)
        assert get(running, "/api/info").json()["live"] == "route"
    finally:
        running.stop()


def test_notification_endpoint_handshakes(explorer: RunningExplorer) -> None:
    """The app's webhook door answers (shared/doors/webhook.py): Event Grid's validation event, the CloudEvents
    abuse-protection handshake with its allowed rate, and 400 for a body that is not JSON."""
    event = {"id": "v-1", "topic": "/subscriptions/x", "subject": "", "eventType": VALIDATION_EVENT,
             "eventTime": "2026-11-30T10:00:00Z", "metadataVersion": "1", "dataVersion": "2",
             "data": {"validationCode": "abc", "validationUrl": None}}
    validation = requests.post(f"{explorer.url}/api/notifications", timeout=10, headers={
        "aeg-event-type": "SubscriptionValidation"}, data=orjson.dumps([event]))
    assert validation.json() == {"validationResponse": "abc"}
    options = requests.options(f"{explorer.url}/api/notifications", timeout=10,
                               headers={"WebHook-Request-Origin": "eventgrid.azure.net", "WebHook-Request-Rate": "120"})
    assert options.status_code == 200 and options.headers["WebHook-Allowed-Origin"] == "eventgrid.azure.net"
    assert options.headers["WebHook-Allowed-Rate"] == "*"
    assert requests.options(f"{explorer.url}/api/notifications", timeout=10).status_code == 400
    broken = requests.post(f"{explorer.url}/api/notifications", data=b"{", timeout=10)
    assert broken.status_code == 400 and broken.json()["error"]["code"] == "MALFORMED_JSON"


def test_the_poller_feeds_the_stream_when_no_route_does(explorer: RunningExplorer, adt: AdtDouble) -> None:
    def change_later() -> None:
        while explorer.app.hub.subscribers() == 0:
            time.sleep(0.02)
        time.sleep(0.5)  # at least one poll has remembered the graph
        adt.graph.patch_twin("dev-04", [{"op": "replace", "path": "/temperature", "value": 77.0}], "*")

    threading.Thread(target=change_later, daemon=True).start()
    change = read_change(explorer)
    assert (change["kind"], change["twinId"], change["via"]) == ("twin.update", "dev-04", "poll")
    assert change["patch"] == [{"op": "replace", "path": "/temperature", "value": 77.0}]


def test_quarantine_without_settings_says_how_to_get_it(explorer: RunningExplorer) -> None:
    response = get(explorer, "/api/quarantine")
    assert response.status_code == 409 and response.json()["error"]["code"] == "NoSettings"
    assert get(explorer, "/api/egress").json()["error"]["code"] == "NoHost"


def test_twin_ids_in_results() -> None:
    rows = [{"$dtId": "a"}, {"T": {"$dtId": "b"}, "R": {"$relationshipId": "r"}}, {"COUNT": 3}, {"x": {"y": 1}}]
    assert _twin_ids(rows) == {"a", "b"}


def test_static_token_only_for_loopback() -> None:
    assert is_loopback("https://127.0.0.1:8443") and is_loopback("https://[::1]:1") and is_loopback("https://localhost")
    assert not is_loopback("https://x.api.weu.digitaltwins.azure.net") and not is_loopback("https://127.example")
    assert type(credential_for("https://127.0.0.1:9")).__name__ == "StaticToken"
    with pytest.raises(ValueError, match="loopback"):
        credential_for("https://x.api.weu.digitaltwins.azure.net", "static")
