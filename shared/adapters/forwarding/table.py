"""Forwarding records in Azure Table Storage (azure-data-tables): one entity per forwarded message key.

PartitionKey = first 2 hex digits of sha256(key) (256 partitions, so writes spread), RowKey = the full digest
(keys hold characters Table Storage forbids in keys, like '/' and '#'); the readable key and ``ForwardedAt`` are
properties. A record older than the retention counts as absent; ``purge`` deletes those (Table Storage has no
TTL): the reconcile timer does, a bounded number per run (functions/reconcile_registry.py). Authentication: the
``AzureWebJobsStorage`` connection string, or a table endpoint URL with ``DefaultAzureCredential``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.adapters.forwarding.memory import DEFAULT_RETENTION_SECONDS
from shared.adapters.state.table import RETRY_SETTINGS
from shared.adapters.storage_calls import client_options
from shared.errors import Code, TransientError

TRANSACTION_LIMIT = 100  # Table Storage: at most 100 operations per entity group transaction


def _address(key: str) -> tuple[str, str]:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return digest[:2], digest


def _unavailable(exc: Exception) -> TransientError:
    return TransientError(Code.FORWARDING_UNAVAILABLE, f"forwarding table: {type(exc).__name__}: {exc}")


class TableForwardingStore:
    def __init__(self, table: TableClient, retention_seconds: float = DEFAULT_RETENTION_SECONDS) -> None:
        self.table = table
        self.retention = timedelta(seconds=retention_seconds)

    @classmethod
    def from_connection_string(cls, connection: str, table_name: str, **kwargs: Any) -> TableForwardingStore:
        service = TableServiceClient.from_connection_string(connection, **client_options(RETRY_SETTINGS))
        return cls._create(service, table_name, **kwargs)

    @classmethod
    def from_endpoint(cls, endpoint: str, table_name: str, **kwargs: Any) -> TableForwardingStore:
        from azure.identity import DefaultAzureCredential

        service = TableServiceClient(endpoint, credential=DefaultAzureCredential(), **client_options(RETRY_SETTINGS))
        return cls._create(service, table_name, **kwargs)

    @classmethod
    def _create(cls, service: TableServiceClient, table_name: str, **kwargs: Any) -> TableForwardingStore:
        try:
            service.create_table(table_name)
        except ResourceExistsError:
            pass
        except AzureError as exc:  # storage unreachable while building the store: as transient as any later call
            raise _unavailable(exc) from exc
        return cls(service.get_table_client(table_name), **kwargs)

    def seen(self, keys: Sequence[str]) -> set[str]:
        horizon = datetime.now(UTC) - self.retention
        found: set[str] = set()
        try:
            for key in dict.fromkeys(keys):
                partition, row = _address(key)
                try:
                    entity = self.table.get_entity(partition, row)
                except ResourceNotFoundError:
                    continue
                forwarded = entity.get("ForwardedAt")
                if isinstance(forwarded, datetime) and forwarded >= horizon:
                    found.add(key)
        except AzureError as exc:
            raise _unavailable(exc) from exc
        return found

    def record(self, keys: Sequence[str]) -> None:
        now = datetime.now(UTC)
        groups: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for key in dict.fromkeys(keys):
            partition, row = _address(key)
            entity = {"PartitionKey": partition, "RowKey": row, "Key": key[:16_000], "ForwardedAt": now}
            groups.setdefault(partition, []).append(("upsert", entity))
        try:
            for operations in groups.values():
                for start in range(0, len(operations), TRANSACTION_LIMIT):
                    chunk = operations[start : start + TRANSACTION_LIMIT]
                    if len(chunk) == 1:
                        self.table.upsert_entity(chunk[0][1], mode=UpdateMode.REPLACE)
                    else:
                        self.table.submit_transaction([(op, entity, {"mode": UpdateMode.REPLACE})
                                                       for op, entity in chunk])
        except AzureError as exc:
            raise _unavailable(exc) from exc

    def purge(self, limit: int | None = None) -> int:
        """Delete records past the retention, at most ``limit`` (None: all); the number deleted."""
        horizon = datetime.now(UTC) - self.retention
        deleted = 0
        try:
            for entity in self.table.query_entities("ForwardedAt lt @horizon", parameters={"horizon": horizon},
                                                    select=["PartitionKey", "RowKey"]):
                if limit is not None and deleted >= limit:
                    break
                self.table.delete_entity(entity["PartitionKey"], entity["RowKey"])
                deleted += 1
        except AzureError as exc:
            raise _unavailable(exc) from exc
        return deleted
