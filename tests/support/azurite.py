"""pytest plugin: one Azurite per test session, started and stopped by PID (see twinbridge/azurite.py).

Tests that need it take the ``azurite`` fixture and carry ``@pytest.mark.integration``. When node or the azurite
package is missing the fixture skips with the reason; ``make install`` installs it wherever npm exists (CI does).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from twinbridge.azurite import Azurite, azurite_missing_reason, start_azurite

T = TypeVar("T")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    reason = azurite_missing_reason()
    if reason is not None:
        pytest.skip(f"Azurite unavailable: {reason}")
    emulator = start_azurite(tmp_path_factory.mktemp("azurite"))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture
def table_name() -> str:
    """A fresh table name per test (letters and digits, starts with a letter), so tests never share state."""
    return "t" + uuid.uuid4().hex[:20]


def memory_or_table(request: pytest.FixtureRequest, memory: Callable[[], T], table: Callable[[str, str], T]) -> T:
    """For a fixture with ``params=["memory", "table"]``: the in-memory store, or the Table Storage one built by
    ``table(connection string, fresh table name)`` on the session's Azurite (the test is then marked integration)."""
    if request.param == "memory":
        return memory()
    request.applymarker(pytest.mark.integration)
    azurite: Azurite = request.getfixturevalue("azurite")
    return table(azurite.connection_string, request.getfixturevalue("table_name"))
