"""``adt serve`` as a subprocess, and the real ``DigitalTwinsClient`` talking to it over HTTPS."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from azure.core.credentials import AccessToken
from azure.digitaltwins.core import DigitalTwinsClient

REPO = Path(__file__).resolve().parents[2]
FIRST_LINE = "ADT emulator listening on https://"


class AnyToken:
    """The emulator accepts any bearer token."""

    def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
        return AccessToken("any-token", int(time.time()) + 3600)


@dataclass
class Emulator:
    process: subprocess.Popen[str]
    url: str
    ca: str
    first_line: str

    def client(self, **kwargs: object) -> DigitalTwinsClient:
        return DigitalTwinsClient(self.url, AnyToken(), connection_verify=self.ca, **kwargs)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_emulator(tls_dir: Path, *extra: str) -> Emulator:
    process = subprocess.Popen(
        [sys.executable, "-m", "twinbridge", "adt", "serve", "--port", "0", "--tls-dir", str(tls_dir), *extra],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline().rstrip("\n")
    if not line.startswith(FIRST_LINE):
        process.kill()
        stderr = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"unexpected first line {line!r}; stderr: {stderr}")
    url = line.split(" ")[4]
    ca = line.split("(CA certificate: ", 1)[1][:-1]
    return Emulator(process, url, ca, line)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory):
    running = start_emulator(tmp_path_factory.mktemp("tls"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> DigitalTwinsClient:
    return emulator.client()


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


@pytest.fixture
def adt(client: DigitalTwinsClient) -> DigitalTwinsClient:
    wipe(client)
    return client
