"""``python -m twinbridge adt serve`` as a subprocess, and the real ``DigitalTwinsClient`` talking to it over HTTPS:
the reference Azure Digital Twins of the tests (the twin-store contract, tests/adt/)."""

from __future__ import annotations

import copy
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from azure.digitaltwins.core import DigitalTwinsClient

from tests.support.fake_adt import FakeCredential

REPO = Path(__file__).resolve().parents[2]
FIRST_LINE = "ADT emulator listening on https://"
DEVICE_MODEL = "dtmi:twinbridge:IoTDevice;1"


@dataclass
class Emulator:
    process: subprocess.Popen[str]
    url: str
    ca: str
    first_line: str

    def client(self, **kwargs: object) -> DigitalTwinsClient:
        # The emulator accepts any bearer token.
        return DigitalTwinsClient(self.url, FakeCredential(), connection_verify=self.ca, **kwargs)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_emulator(tls_dir: Path, *extra: str) -> Emulator:
    # stderr to a file, not a pipe: a pipe nobody reads fills up and stalls the emulator.
    tls_dir.mkdir(parents=True, exist_ok=True)
    stderr = (tls_dir / "emulator.stderr").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "twinbridge", "adt", "serve", "--port", "0", "--tls-dir", str(tls_dir), *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True)
    stderr.close()
    assert process.stdout is not None
    line = process.stdout.readline().rstrip("\n")
    if not line.startswith(FIRST_LINE):
        process.kill()
        process.wait()
        raise AssertionError(f"unexpected first line {line!r}; stderr: {(tls_dir / 'emulator.stderr').read_text()}")
    url = line.split(" ")[4]
    ca = line.split("(CA certificate: ", 1)[1][:-1]
    return Emulator(process, url, ca, line)


def wipe(client: DigitalTwinsClient) -> None:
    """Delete every relationship, twin and model through the API itself, so each test starts empty."""
    for twin in list(client.query_twins("SELECT * FROM DIGITALTWINS")):
        for rel in client.list_relationships(twin["$dtId"]):
            client.delete_relationship(twin["$dtId"], rel["$relationshipId"])
    for twin in list(client.query_twins("SELECT * FROM DIGITALTWINS")):
        client.delete_digital_twin(twin["$dtId"])
    models = [m.id for m in client.list_models()]
    while models:  # referenced models go last
        remaining = []
        for model_id in models:
            try:
                client.delete_model(model_id)
            except Exception:
                remaining.append(model_id)
        if remaining == models:
            raise AssertionError(f"models that cannot be deleted: {remaining}")
        models = remaining
    for route in list(client.list_event_routes()):
        client.delete_event_route(route.id)


def contract_models() -> list[dict[str, Any]]:
    """The app's models, with the ``contains`` relationship the twin-store contract creates declared on the device
    model: ADT refuses a relationship its source model does not declare (400 ValidationFailed), and the shipped
    models/IoTDevice.json declares none (the app itself never creates relationships)."""
    documents = [orjson.loads(p.read_bytes()) for p in sorted((REPO / "models").glob("*.json"))]
    device = next(d for d in documents if d["@id"] == DEVICE_MODEL)
    patched = copy.deepcopy(device)
    patched["contents"].append({"@type": "Relationship", "name": "contains"})
    return [patched if d is device else d for d in documents]
