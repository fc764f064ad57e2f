
import pytest
from azure.core.pipeline.transport import RequestsTransport
from azure.digitaltwins.core import DigitalTwinsClient

from shared.adapters.twins.adt import AdtTwinStore
from shared.adapters.twins.embedded_graph import EmbeddedTwinGraph
from tests.support.fake_adt import ENDPOINT, FakeCredential
from tests.support.rig import CATALOG


@pytest.fixture
def adt_store(fake_adt, monkeypatch):
    # azure-core's RetryPolicy sleeps through transport.sleep(): record the durations instead of sleeping.
    sleeps = []
    monkeypatch.setattr(RequestsTransport, "sleep", lambda self, duration: sleeps.append(duration))
    client = DigitalTwinsClient(ENDPOINT, FakeCredential(), retry_total=3, retry_backoff_factor=0.5,
                                retry_backoff_max=4)
    store = AdtTwinStore(client)
    store.sleeps = sleeps
    return store


@pytest.fixture(params=["embedded", "adt"])
def twin_store(request):
    """The same contract, two adapters."""
    if request.param == "embedded":
        return EmbeddedTwinGraph(CATALOG)
    return request.getfixturevalue("adt_store")
