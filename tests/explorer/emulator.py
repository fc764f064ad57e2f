"""``python -m twinbridge adt serve`` in a subprocess for the explorer's tests, seeded like conftest.seed."""

from __future__ import annotations

from pathlib import Path

from azure.digitaltwins.core import DigitalTwinsClient

from tests.explorer.conftest import DEVICE, SITE, model_documents
from tests.support import adt_emulator
from tests.support.adt_emulator import Emulator

SOURCE_TIME = "2026-11-30T09:59:58.1234567Z"


def start_emulator(folder: Path) -> Emulator:
    """The tests' one way to start ``adt serve`` (tests/support/adt_emulator.py), its CA kept under ``folder``."""
    return adt_emulator.start_emulator(folder / "tls")


def seed(client: DigitalTwinsClient, devices: int = 6) -> None:
    """The same graph as conftest.seed, written through the API: two sites containing the devices."""
    client.create_models(model_documents())
    for site in ("site-north", "site-south"):
        client.upsert_digital_twin(site, {"$metadata": {"$model": SITE}, "name": site.removeprefix("site-").title()})
    for i in range(devices):
        twin_id = f"dev-{i:02d}"
        client.upsert_digital_twin(twin_id, {"$metadata": {"$model": DEVICE}, "temperature": 20.0 + i,
                                             "connectionState": "Connected" if i % 2 == 0 else "Disconnected"})
        site = "site-north" if i < devices // 2 else "site-south"
        client.upsert_relationship(site, f"contains-{twin_id}", {"$targetId": twin_id, "$sourceId": site,
                                                                 "$relationshipName": "contains"})
    # a device-reported time for one property (how-to-manage-twin, "Update a property's sourceTime")
    client.update_digital_twin("dev-02", [{"op": "add", "path": "/$metadata/temperature/sourceTime",
                                           "value": SOURCE_TIME}])
