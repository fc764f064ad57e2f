"""``python -m twinbridge adt serve`` in a subprocess for the explorer's tests, seeded like conftest.seed."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from azure.digitaltwins.core import DigitalTwinsClient

from tests.twinbridge_explorer.conftest import DEVICE, SITE, model_documents
from twinbridge.explorer.source import StaticToken

REPO = Path(__file__).resolve().parents[2]
FIRST_LINE = "ADT emulator listening on https://"
SOURCE_TIME = "2026-11-30T09:59:58.1234567Z"


@dataclass
class Emulator:
    process: subprocess.Popen[bytes]
    url: str
    ca: str

    def client(self) -> DigitalTwinsClient:
        return DigitalTwinsClient(self.url, StaticToken(), connection_verify=self.ca)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_emulator(folder: Path) -> Emulator:
    log = (folder / "emulator.log").open("wb")  # a file, not a pipe: a full pipe would stall the emulator
    process = subprocess.Popen([sys.executable, "-m", "twinbridge", "adt", "serve", "--port", "0", "--tls-dir",
                                str(folder / "tls")], cwd=REPO, stdout=subprocess.PIPE, stderr=log,
                               stdin=subprocess.DEVNULL)
    assert process.stdout is not None
    line = process.stdout.readline().decode().rstrip("\n")
    if not line.startswith(FIRST_LINE):
        process.kill()
        raise AssertionError(f"adt serve did not start: {line!r}; see {log.name}")
    url = line.split(" ")[4]
    ca = line.split("(CA certificate: ", 1)[1][:-1]
    return Emulator(process, url, ca)


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
