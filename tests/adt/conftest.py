"""``adt serve`` as a subprocess (tests/support/adt_emulator.py), one per test module, emptied before each test."""

from __future__ import annotations

import pytest
from azure.digitaltwins.core import DigitalTwinsClient

from tests.support.adt_emulator import Emulator, start_emulator, wipe


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory):
    running = start_emulator(tmp_path_factory.mktemp("tls"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(emulator: Emulator) -> DigitalTwinsClient:
    return emulator.client()


@pytest.fixture
def adt(client: DigitalTwinsClient) -> DigitalTwinsClient:
    wipe(client)
    return client
