"""Event Grid's dead-letter container on Blob Storage (shared/adapters/quarantine/blob.py BlobDeadLetters), against a
real Azurite: listed, read and deleted as the collect_dead_letters door uses it, into the Blob quarantine."""

from __future__ import annotations

import uuid

import orjson
import pytest
from azure.storage.blob import BlobServiceClient

from shared.adapters.quarantine.blob import BlobDeadLetters, BlobQuarantine
from shared.doors.dead_letters import collect
from shared.errors import Code
from tests.support import event_factory as factory
from twinbridge.azurite import Azurite

pytestmark = pytest.mark.integration


def test_dead_letter_blobs_are_moved_into_the_blob_quarantine(azurite: Azurite) -> None:
    container = "dl" + uuid.uuid4().hex[:12]
    event = {**factory.connection("d1", 1), "deadLetterReason": "MaxDeliveryAttemptsExceeded", "deliveryAttempts": 3}
    name = "TWINBRIDGE-SUB/2026/11/24/10/x.json"
    service = BlobServiceClient.from_connection_string(azurite.connection_string)
    service.create_container(container)
    service.get_blob_client(container, name).upload_blob(orjson.dumps([event]))

    source = BlobDeadLetters.from_connection_string(azurite.connection_string, container)
    assert list(source.names()) == [name]
    assert source.read("missing.json") is None
    quarantine = BlobQuarantine.from_connection_string(azurite.connection_string, "q" + uuid.uuid4().hex[:12])
    report = collect(source, quarantine)
    assert (report.blobs, report.records) == (1, 1)
    [record] = list(quarantine)
    assert record.code == Code.DEAD_LETTERED and record.extra["deadLetterBlob"] == name
    assert quarantine.get(record.record_id) == record
    assert list(source.names()) == []
    source.delete(name)  # already gone: not an error
