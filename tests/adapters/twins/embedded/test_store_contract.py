"""The TwinStore contract (tests/adapters/test_twin_store_contract.py) against the engine's port adapter
(shared/adapters/twins/embedded/store.py): proof the engine can replace the old embedded graph behind the port."""

from __future__ import annotations

import pytest

from shared.adapters.twins.embedded import TwinGraph
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from tests.adapters.test_twin_store_contract import *  # noqa: F403 - the contract's tests, collected here
from tests.twinbridge_adt.test_twin_store_contract_on_emulator import _contract_models


@pytest.fixture
def twin_store():
    graph = TwinGraph()
    graph.add_models(_contract_models())
    return EmbeddedTwinStore(graph)
