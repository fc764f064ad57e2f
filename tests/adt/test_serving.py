"""How adt serve behaves as a server: concurrent writers, strict X.509 clients, models loaded at start."""

from __future__ import annotations

import ssl
import threading
import urllib.request
from urllib.parse import urlsplit

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import HttpResponseError

from tests.support.adt_emulator import start_emulator

pytestmark = pytest.mark.integration

COUNTER = {"@id": "dtmi:test:Counter;1", "@type": "Interface", "@context": "dtmi:dtdl:context;3",
           "contents": [{"@type": "Property", "name": "n", "schema": "integer"}]}


def test_concurrent_conditional_increments_lose_nothing(emulator, adt):
    """Eight clients each add 1 five times with read / If-Match PATCH / retry on 412: ETags serialise them, so the
    counter ends at exactly 40 and every conflict was a 412."""
    adt.create_models([COUNTER])
    adt.upsert_digital_twin("c", {"$metadata": {"$model": COUNTER["@id"]}, "n": 0})
    conflicts: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        client = emulator.client()
        try:
            for _ in range(5):
                while True:
                    twin = client.get_digital_twin("c")
                    try:
                        client.update_digital_twin("c", [{"op": "replace", "path": "/n", "value": twin["n"] + 1}],
                                                   etag=twin["$etag"], match_condition=MatchConditions.IfNotModified)
                        break
                    except HttpResponseError as error:
                        assert error.status_code == 412
                        conflicts.append(1)
        except BaseException as error:  # surfaced below: a thread's failure must fail the test
            errors.append(error)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    assert adt.get_digital_twin("c")["n"] == 40


def test_the_certificate_passes_strict_x509_verification(emulator):
    """Python 3.13 turns on VERIFY_X509_STRICT by default; the CA and server certificate must satisfy it (and work
    for localhost as well as 127.0.0.1)."""
    context = ssl.create_default_context(cafile=emulator.ca)
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    port = urlsplit(emulator.url).port
    for host in ("127.0.0.1", "localhost"):
        request = urllib.request.Request(f"https://{host}:{port}/models?api-version=2023-10-31",
                                         headers={"Authorization": "Bearer x"})
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            assert response.status == 200


def test_models_directory_is_uploaded_at_start(tmp_path):
    """``--models models/`` uploads the app's own DTDL files; a second start on the same --db skips them."""
    db = tmp_path / "g.db"
    for _ in range(2):
        running = start_emulator(tmp_path / "tls", "--models", "models", "--db", str(db))
        try:
            ids = sorted(m.id for m in running.client().list_models())
        finally:
            running.stop()
        assert "dtmi:twinbridge:IoTDevice;1" in ids
