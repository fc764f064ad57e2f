"""The explorer's API against the ADT emulator over HTTPS: the real query language, $metadata, models, live polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests

from tests.twinbridge_explorer.conftest import DEVICE, SITE
from tests.twinbridge_explorer.emulator import SOURCE_TIME, Emulator, seed, start_emulator
from twinbridge.explorer.local import LocalRun
from twinbridge.explorer.server import RunningExplorer, serve
from twinbridge.explorer.source import AdtSource, StaticToken

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    running = start_emulator(tmp_path_factory.mktemp("adt"))
    try:
        seed(running.client())
        yield running
    finally:
        running.stop()


@pytest.fixture
def explorer(emulator: Emulator) -> Iterator[RunningExplorer]:
    running = serve(AdtSource.connect(emulator.url, StaticToken(), emulator.ca), LocalRun(), port=0, live="auto",
                    poll_interval=0.2)
    try:
        yield running
    finally:
        running.stop()


def query(explorer: RunningExplorer, text: str, token: str | None = None) -> requests.Response:
    return requests.post(f"{explorer.url}/api/query", json={"query": text, "continuationToken": token}, timeout=10)


def test_graph_and_twin_with_source_time(explorer: RunningExplorer) -> None:
    graph = requests.get(f"{explorer.url}/api/graph", timeout=10).json()
    assert len(graph["twins"]) >= 8 and len(graph["relationships"]) >= 6
    data = requests.get(f"{explorer.url}/api/twins/dev-02", timeout=10).json()
    assert data["twin"]["$metadata"]["temperature"]["sourceTime"] == SOURCE_TIME
    assert data["twin"]["$etag"].startswith('W/"')
    assert [r["$sourceId"] for r in data["incoming"]] == ["site-north"]
    assert data["model"]["id"] == DEVICE


def test_real_queries_with_aliases_joins_and_errors(explorer: RunningExplorer) -> None:
    connected = query(explorer, "SELECT T FROM DIGITALTWINS T WHERE T.connectionState = 'Connected' "
                                "AND IS_OF_MODEL(T, 'dtmi:twinbridge:IoTDevice;1')").json()
    assert connected["twinIds"] == ["dev-00", "dev-02", "dev-04"]
    joined = query(explorer, "SELECT D FROM DIGITALTWINS S JOIN D RELATED S.contains "
                             "WHERE S.$dtId = 'site-south' AND D.temperature > 23").json()
    assert joined["twinIds"] == ["dev-04", "dev-05"]
    count = query(explorer, "SELECT COUNT() FROM DIGITALTWINS WHERE IS_OF_MODEL('" + SITE + "')").json()
    assert count["value"] == [{"COUNT": 2}] and count["twinIds"] == []
    refused = query(explorer, "SELECT * FROM DIGITALTWINS WHERE")
    assert refused.status_code == 400 and refused.json()["error"]["code"]


def test_models_of_the_instance(explorer: RunningExplorer) -> None:
    ids = {m["id"] for m in requests.get(f"{explorer.url}/api/models", timeout=10).json()["value"]}
    assert {DEVICE, SITE} <= ids


def test_a_change_made_through_the_api_reaches_the_event_stream(explorer: RunningExplorer, emulator: Emulator) -> None:
    client = emulator.client()

    def change_later() -> None:
        while explorer.app.hub.subscribers() == 0:
            time.sleep(0.02)
        time.sleep(0.6)  # a poll has remembered the graph first
        client.update_digital_twin("dev-05", [{"op": "replace", "path": "/temperature", "value": 61.5}])

    threading.Thread(target=change_later, daemon=True).start()
    change: dict[str, Any] = {}
    with requests.get(f"{explorer.url}/api/events", stream=True, timeout=15) as stream:
        for line in stream.iter_lines():
            if line.startswith(b"data: "):
                change = orjson.loads(line[6:])
                if change["twinId"] == "dev-05":
                    break
    assert (change["kind"], change["via"]) == ("twin.update", "poll")
    assert {"op": "replace", "path": "/temperature", "value": 61.5} in change["patch"]


def test_wrong_ca_is_a_clear_error(emulator: Emulator, tmp_path: Path) -> None:
    running = serve(AdtSource.connect(emulator.url, StaticToken(), None), LocalRun(), port=0, live="off")
    try:
        response = requests.get(f"{running.url}/api/graph", timeout=30)
        assert response.status_code == 502 and response.json()["error"]["code"] == "ServiceUnreachable"
        assert "CERTIFICATE" in response.json()["error"]["message"].upper()
    finally:
        running.stop()
