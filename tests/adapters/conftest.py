import pytest
from azure.core.pipeline.transport import RequestsTransport
from azure.digitaltwins.core import DigitalTwinsClient

from shared.adapters.twins.adt import AdtTwinStore
from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.wiring import embedded_twin_store
from tests.support.adt_emulator import contract_models as contract_documents
from tests.support.adt_emulator import start_emulator, wipe
from tests.support.fake_adt import ENDPOINT, FakeCredential


@pytest.fixture
def adt_store(fake_adt, monkeypatch):
    """The ADT adapter over the ``responses`` fake: for tests that script HTTP faults or inspect the requests."""
    # azure-core's RetryPolicy sleeps through transport.sleep(): record the durations instead of sleeping.
    sleeps = []
    monkeypatch.setattr(RequestsTransport, "sleep", lambda self, duration: sleeps.append(duration))
    client = DigitalTwinsClient(ENDPOINT, FakeCredential(), retry_total=3, retry_backoff_factor=0.5,
                                retry_backoff_max=4)
    store = AdtTwinStore(client)
    store.sleeps = sleeps
    return store


@pytest.fixture(scope="session")
def adt_emulator(tmp_path_factory):
    """One ``adt serve`` over HTTPS for the session's contract runs (emptied through its API before each test)."""
    running = start_emulator(tmp_path_factory.mktemp("adt-emulator"))
    yield running
    running.stop()


@pytest.fixture(params=["embedded", pytest.param("adt-on-emulator", marks=pytest.mark.integration)])
def twin_store(request):
    """The same contract, two adapters: the embedded store over the engine, and the ADT adapter — the real
    DigitalTwinsClient over HTTPS — against ``adt serve`` (the reference run)."""
    if request.param == "embedded":
        catalog = ModelCatalog()
        catalog.add(contract_documents())
        return embedded_twin_store(catalog)
    client = request.getfixturevalue("adt_emulator").client()
    wipe(client)
    client.create_models(contract_documents())
    return AdtTwinStore(client)
