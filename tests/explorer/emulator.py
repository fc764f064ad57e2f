"""``python -m twinbridge adt serve`` in a subprocess for the explorer's tests, seeded with conftest's seed graph."""

from __future__ import annotations

from pathlib import Path

from azure.digitaltwins.core import DigitalTwinsClient

from tests.explorer.conftest import model_documents, seed_graph
from tests.support import adt_emulator
from tests.support.adt_emulator import Emulator

SOURCE_TIME = "2026-11-30T09:59:58.1234567Z"


def start_emulator(folder: Path) -> Emulator:
    """The tests' one way to start ``adt serve`` (tests/support/adt_emulator.py), its CA kept under ``folder``."""
    return adt_emulator.start_emulator(folder / "tls")


def seed(client: DigitalTwinsClient, devices: int = 6) -> None:
    """conftest's seed graph, written through the API (models first), plus a device-reported time."""
    client.create_models(model_documents())
    twins, relationships = seed_graph(devices)
    for twin_id, twin in twins:
        client.upsert_digital_twin(twin_id, twin)
    for source, relationship_id, relationship in relationships:
        client.upsert_relationship(source, relationship_id, {**relationship, "$sourceId": source})
    # a device-reported time for one property (how-to-manage-twin, "Update a property's sourceTime")
    client.update_digital_twin("dev-02", [{"op": "add", "path": "/$metadata/temperature/sourceTime",
                                           "value": SOURCE_TIME}])
