"""Checkpoints on Azure Table Storage: the reconcile timer's resume point survives restarts and scale-out.

One small entity per name in its own table (the state table holds only shadows: its clean-up reads every entity
as one). Last write wins, as the port says: a resume point is advisory — resuming from an older one repeats a
page, which reconcile makes harmless.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.adapters.state.table import RETRY_SETTINGS
from shared.adapters.storage_calls import CreateOnce, call_storage, client_options

DEFAULT_TABLE = "twinbridgecheckpoints"
_PARTITION = "checkpoint"
T = TypeVar("T")


class TableCheckpoints:
    def __init__(self, client: TableClient) -> None:
        self.client = client
        self._table = CreateOnce(client.create_table, "checkpoint table")

    @classmethod
    def from_connection_string(cls, connection: str, table: str = DEFAULT_TABLE, **kwargs: Any) -> TableCheckpoints:
        options = client_options({**RETRY_SETTINGS, **kwargs})
        return cls(TableClient.from_connection_string(connection, table, **options))

    @classmethod
    def from_account(cls, account: str, table: str = DEFAULT_TABLE,
                     credential: TokenCredential | None = None) -> TableCheckpoints:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return cls(TableClient(f"https://{account}.table.core.windows.net", table, credential=credential,
                               **client_options(RETRY_SETTINGS)))

    def get(self, name: str) -> str | None:
        try:
            entity = self._call(f"read checkpoint {name}", lambda: self.client.get_entity(_PARTITION, name))
        except ResourceNotFoundError:
            return None
        value = entity.get("value")
        return value if isinstance(value, str) else None

    def put(self, name: str, value: str | None) -> None:
        """``None`` forgets the resume point (the next run starts from the beginning)."""
        if value is None:
            with contextlib.suppress(ResourceNotFoundError):
                self._call(f"forget checkpoint {name}", lambda: self.client.delete_entity(_PARTITION, name))
            return
        entity = {"PartitionKey": _PARTITION, "RowKey": name, "value": value}
        self._call(f"write checkpoint {name}", lambda: self.client.upsert_entity(entity, mode=UpdateMode.REPLACE))

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        return call_storage(self._table, what, "Table Storage", operation)
