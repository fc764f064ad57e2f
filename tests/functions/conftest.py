
import pytest
from azure.core.pipeline.transport import RequestsTransport
from azure.digitaltwins.core import DigitalTwinsClient

from functions.runtime import use_app
from shared.adapters.twins.adt import AdtTwinStore
from tests.support.fake_adt import ENDPOINT, FakeCredential


@pytest.fixture
def install():
    """install(app): make it the process-wide app for the doors; forgotten after the test."""
    yield use_app
    use_app(None)


@pytest.fixture
def adt_store(fake_adt, monkeypatch):
    """The real ADT adapter (azure-core retry policy included) talking to the fake data plane; no real sleeps."""
    monkeypatch.setattr(RequestsTransport, "sleep", lambda self, duration: None)
    client = DigitalTwinsClient(ENDPOINT, FakeCredential(), retry_total=2, retry_backoff_factor=0.01,
                                retry_backoff_max=0.01)
    return AdtTwinStore(client)
