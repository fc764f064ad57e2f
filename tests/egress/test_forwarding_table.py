"""Forwarding records in Table Storage (real Azurite) behave like the memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.data.tables import TableClient, UpdateMode

from shared.adapters.forwarding.memory import MemoryForwardingStore
from shared.adapters.forwarding.table import TableForwardingStore, _address
from shared.egress.ports import ForwardingStore
from shared.errors import Code, TransientError
from tests.support.azurite import memory_or_table
from twinbridge.azurite import ACCOUNT, ACCOUNT_KEY, Azurite

KEYS = [f"{'contoso-adt.api.weu.digitaltwins.azure.net'}|n{i}|route/{i % 3}#{i % 2}" for i in range(150)]


@pytest.fixture(params=["memory", "table"])
def store(request: pytest.FixtureRequest) -> ForwardingStore:
    return memory_or_table(request, MemoryForwardingStore, TableForwardingStore.from_connection_string)


def test_recorded_keys_are_seen_and_others_are_not(store: ForwardingStore) -> None:
    assert store.seen(KEYS[:3]) == set()
    store.record(KEYS)  # 150 keys: several partitions, transactions of ≤ 100
    store.record(KEYS[:5])  # idempotent
    assert store.seen([*KEYS[140:], "other|key|r"]) == set(KEYS[140:])


@pytest.mark.integration
def test_expired_records_count_as_absent_and_are_purged(azurite: Azurite, table_name: str) -> None:
    store = TableForwardingStore.from_connection_string(azurite.connection_string, table_name,
                                                        retention_seconds=25 * 3600)
    store.record(["old", "new"])
    table = TableClient.from_connection_string(azurite.connection_string, table_name)
    partition, row = _address("old")
    table.upsert_entity({"PartitionKey": partition, "RowKey": row, "Key": "old",
                         "ForwardedAt": datetime.now(UTC) - timedelta(hours=26)}, mode=UpdateMode.REPLACE)
    assert store.seen(["old", "new"]) == {"new"}
    assert store.purge() == 1
    assert store.seen(["old", "new"]) == {"new"}


def test_unreachable_table_is_transient() -> None:
    # The public Azurite development account, pointed at a port where nothing listens.
    conn = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"TableEndpoint=http://127.0.0.1:9/{ACCOUNT};")
    store = TableForwardingStore(TableClient.from_connection_string(conn, "nowhere", retry_total=0))
    with pytest.raises(TransientError) as info:
        store.seen(["k"])
    assert info.value.code is Code.FORWARDING_UNAVAILABLE


@pytest.mark.integration
def test_the_reconcile_timer_purges_expired_forwarding_records_bounded(azurite: Azurite, table_name: str) -> None:
    import functions.reconcile_registry as timer
    from shared.settings.environment import Settings
    from tests.support.rig import make_app

    store = TableForwardingStore.from_connection_string(azurite.connection_string, table_name)
    store.record(["kept"])
    table = TableClient.from_connection_string(azurite.connection_string, table_name)
    for i in range(5):  # forwarded 49 h ago: past the 48 h retention
        partition, row = _address(f"old{i}")
        table.upsert_entity({"PartitionKey": partition, "RowKey": row, "Key": f"old{i}",
                             "ForwardedAt": datetime.now(UTC) - timedelta(hours=49)}, mode=UpdateMode.REPLACE)
    settings = Settings(forwarding_store="table", forwarding_table=table_name,
                        storage_connection=azurite.connection_string)
    app = make_app(settings=settings)
    assert timer.purge_forwarding_records(app, limit=3) == 3  # bounded per run
    assert timer.purge_forwarding_records(app, limit=3) == 2
    assert timer.purge_forwarding_records(app, limit=3) == 0
    assert store.seen(["kept", "old0"]) == {"kept"}
    assert timer.purge_forwarding_records(make_app()) == 0  # memory store: forgets by itself, per process


def test_the_memory_store_purges_what_is_past_the_retention() -> None:
    now = [1_000_000.0]
    store = MemoryForwardingStore(retention_seconds=10, clock=lambda: now[0])
    store.record(["a", "b", "c"])
    now[0] += 11
    assert store.purge(limit=2) == 2 and store.purge() == 1 and len(store) == 0
