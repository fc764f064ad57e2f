"""HTTP-level behaviour of the ADT adapter through the real DigitalTwinsClient.

Where each behaviour is held now: the port's answers (412 → TwinConflict, 400 → TwinRejected, 404s, deletes) by
the twin-store contract against ``adt serve`` over HTTPS (tests/adapters/test_twin_store_contract.py); 429 with
Retry-After, 503 and lost responses, with azure-core's real RetryPolicy, by the fault-injecting transport
(tests/adapters/test_adt_faults.py). Here: the exact request headers, and the whole pipeline over the adapter
against the emulator giving the same twins as over the embedded store.
"""

import pytest

from shared.adapters.twins.adt import AdtTwinStore
from tests.support.fake_adt import FakeCredential
from tests.support.fault_transport import FaultTransport
from tests.support.rig import rig

MODEL = "dtmi:twinbridge:IoTDevice;1"


def test_conditional_headers_are_sent_verbatim():
    transport = FaultTransport()
    store = AdtTwinStore.from_url("https://adt.test", FakeCredential(), transport=transport)
    etag = store.create_twin("t1", {"$metadata": {"$model": MODEL}})
    put = {k.lower(): v for k, v in transport.writes("PUT")[0].headers.items()}
    assert put["if-none-match"] == "*"
    store.patch_twin("t1", [{"op": "add", "path": "/temperature", "value": 1.0}], etag)
    patch = {k.lower(): v for k, v in transport.writes("PATCH")[0].headers.items()}
    assert patch["if-match"] == etag  # the weak etag W/"…" goes out unquoted, exactly as read
    assert patch["content-type"] == "application/json-patch+json"
    assert patch["authorization"] == "Bearer fake-token"


@pytest.mark.integration
def test_pipeline_over_the_adt_adapter_matches_the_embedded_store(adt_emulator):
    from tests.support.adt_emulator import contract_models, wipe
    from tests.support.streams import fleet_stream

    client = adt_emulator.client()
    wipe(client)
    client.create_models(contract_models())
    stream = fleet_stream(devices=3, steps=6)
    embedded = rig()
    embedded.pipeline.process(stream)
    over_adt = rig(twins=AdtTwinStore(client))
    over_adt.pipeline.process(stream)
    assert over_adt.user_twins() == embedded.user_twins()
    assert embedded.user_twins()  # the stream did write twins
