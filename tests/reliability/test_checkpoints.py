"""Reconcile's resume point on Table Storage (Azurite), the wiring that selects it, and the timer's housekeeping."""

from datetime import UTC, datetime, timedelta

import pytest

from functions.reconcile_registry import purge_expired_state
from shared.adapters.checkpoints.memory import MemoryCheckpoints
from shared.adapters.checkpoints.table import TableCheckpoints
from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.state.table import TableStateStore
from shared.settings.environment import Settings
from shared.twins.freshness import DELETED, LIFECYCLE, TOMBSTONE, Mark, Shadow
from shared.wiring import build_checkpoints


@pytest.mark.integration
def test_table_checkpoints_survive_a_new_client(azurite, table_name):
    first = TableCheckpoints.from_connection_string(azurite.connection_string, table_name)
    assert first.get("reconcile") is None
    first.put("reconcile", '{"token": "abc"}')
    first.put("reconcile", '{"token": "def"}')  # last write wins
    second = TableCheckpoints.from_connection_string(azurite.connection_string, table_name)  # a restarted host
    assert second.get("reconcile") == '{"token": "def"}'
    second.put("reconcile", None)
    assert first.get("reconcile") is None


@pytest.mark.integration
def test_the_timer_purges_expired_tombstones_bounded_per_run(azurite, table_name):
    store = TableStateStore.from_connection_string(azurite.connection_string, table_name)
    old = datetime.now(UTC) - timedelta(hours=30)
    store.clock = lambda: old
    for i in range(5):
        shadow = Shadow(f"gone-{i}", "m")
        mark = Mark((1, 1, 1), DELETED, f"d{i}", 1)
        shadow.marks.update({LIFECYCLE: mark, TOMBSTONE: mark})
        store.save(shadow, None)
    store.clock = lambda: datetime.now(UTC)
    assert purge_expired_state(store, limit=3) == 3
    assert purge_expired_state(store, limit=3) == 2
    assert purge_expired_state(MemoryStateStore()) == 0  # a store without expiry: nothing to do


def test_durable_state_means_durable_checkpoints():
    assert isinstance(build_checkpoints(Settings()), MemoryCheckpoints)
    table = build_checkpoints(Settings(state_store="table", storage_connection="UseDevelopmentStorage=true"))
    assert isinstance(table, TableCheckpoints)
