"""The Azurite launcher itself: three services on private ports, a usable connection string, stopped by PID."""

from __future__ import annotations

import os

import pytest
from azure.data.tables import TableServiceClient
from azure.storage.blob import BlobServiceClient

from twinbridge.azurite import Azurite, azurite_missing_reason, start_azurite

pytestmark = pytest.mark.integration


def test_session_azurite_serves_tables_and_blobs(azurite: Azurite, table_name: str) -> None:
    tables = TableServiceClient.from_connection_string(azurite.connection_string)
    tables.create_table(table_name)
    assert table_name in [t.name for t in tables.query_tables(f"TableName eq '{table_name}'")]
    blobs = BlobServiceClient.from_connection_string(azurite.connection_string)
    container = blobs.create_container(f"c{table_name}")
    container.upload_blob("hello", b"world")
    assert container.download_blob("hello").readall() == b"world"


def test_start_and_stop_by_pid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    reason = azurite_missing_reason()
    if reason is not None:
        pytest.skip(f"Azurite unavailable: {reason}")
    with start_azurite(tmp_path) as emulator:
        assert emulator.running()
        assert len({emulator.blob_port, emulator.queue_port, emulator.table_port}) == 3
        assert f"TableEndpoint=http://127.0.0.1:{emulator.table_port}/devstoreaccount1" in emulator.connection_string
        pid = emulator.pid
        assert os.path.exists(f"/proc/{pid}")
    assert not emulator.running()
    assert not os.path.exists(f"/proc/{pid}")  # reaped: Popen.wait ran in stop()
    emulator.stop()  # idempotent
