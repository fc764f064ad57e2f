"""Fixtures of the explorer's tests: an ADT data plane with a seeded graph, the explorer served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import responses

from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.settings.environment import APP_ROOT
from shared.wiring import embedded_twin_store
from tests.explorer.adt_double import AdtDouble
from tests.support.fake_adt import ENDPOINT, FakeCredential
from twinbridge.explorer.local import LocalRun
from twinbridge.explorer.server import RunningExplorer, serve
from twinbridge.explorer.source import AdtSource

HERE = Path(__file__).resolve().parent
DEVICE = "dtmi:twinbridge:IoTDevice;1"
SITE = "dtmi:twinbridge:test:Site;1"


def model_documents() -> list[dict[str, Any]]:
    return [orjson.loads(p.read_bytes()) for p in sorted([*(APP_ROOT / "models").glob("*.json"),
                                                          *(HERE / "models").glob("*.json")])]


def catalog() -> ModelCatalog:
    found = ModelCatalog()
    found.add(model_documents())
    return found


Twins = list[tuple[str, dict[str, Any]]]
Relationships = list[tuple[str, str, dict[str, Any]]]


def seed_graph(devices: int = 6) -> tuple[Twins, Relationships]:
    """Two sites, each containing half of the devices; devices alternate Connected/Disconnected. The one seed of the
    explorer's tests: written into the in-process graph (``seed``) or through the API (emulator.seed)."""
    twins: Twins = [(site, {"$metadata": {"$model": SITE}, "name": site.removeprefix("site-").title()})
                    for site in ("site-north", "site-south")]
    relationships: Relationships = []
    for i in range(devices):
        twin_id = f"dev-{i:02d}"
        twins.append((twin_id, {"$metadata": {"$model": DEVICE}, "temperature": 20.0 + i,
                                "connectionState": "Connected" if i % 2 == 0 else "Disconnected"}))
        site = "site-north" if i < devices // 2 else "site-south"
        relationships.append((site, f"contains-{twin_id}", {"$targetId": twin_id, "$relationshipName": "contains"}))
    return twins, relationships


def seed(graph: EmbeddedTwinStore, devices: int = 6) -> None:
    twins, relationships = seed_graph(devices)
    for twin_id, twin in twins:
        graph.create_twin(twin_id, twin)
    for source, relationship_id, relationship in relationships:
        graph.upsert_relationship(source, relationship_id, relationship)


@pytest.fixture
def adt() -> Iterator[AdtDouble]:
    """The seeded data plane; only https://fake-adt… is mocked, every loopback request really goes out."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.add_passthru("http://127.0.0.1")
        mock.add_passthru("http://localhost")
        graph = embedded_twin_store(catalog())
        seed(graph)
        yield AdtDouble(graph, mock, model_documents())


def start_explorer(local: LocalRun | None = None, live: str = "poll", poll: float = 0.2) -> RunningExplorer:
    source = AdtSource.connect(ENDPOINT, FakeCredential(), retry_total=0)
    return serve(source, local or LocalRun(), port=0, live=live, poll_interval=poll)


@pytest.fixture
def explorer(adt: AdtDouble) -> Iterator[RunningExplorer]:
    running = start_explorer()
    try:
        yield running
    finally:
        running.stop()
