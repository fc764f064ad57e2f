"""Shared pytest configuration. Fixture plugins live in tests/support/ and are listed here."""

import pytest
import responses

from shared.wiring import embedded_twin_store
from tests.support.fake_adt import FakeAdt
from tests.support.rig import CATALOG

pytest_plugins: list[str] = ["tests.support.azurite"]


@pytest.fixture
def fake_adt():
    """A fake Azure Digital Twins data plane (tests/support/fake_adt.py) over a fresh embedded graph."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeAdt(embedded_twin_store(CATALOG), mock)
