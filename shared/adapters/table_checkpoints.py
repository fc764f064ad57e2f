"""Checkpoints on Azure Table Storage: the reconcile timer's resume point survives restarts and scale-out.

One small entity per name in its own table (the state table holds only shadows: its clean-up reads every entity
as one). Last write wins, as the port says: a resume point is advisory — resuming from an older one repeats a
page, which reconcile makes harmless.
"""

from __future__ import annotations

import contextlib
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from shared.adapters.table_state import RETRY_SETTINGS
from shared.errors import Code, TransientError

DEFAULT_TABLE = "twinbridgecheckpoints"
_PARTITION = "checkpoint"


class TableCheckpoints:
    def __init__(self, client: TableClient) -> None:
        self.client = client
        self._table_ready = False

    @classmethod
    def from_connection_string(cls, connection: str, table: str = DEFAULT_TABLE, **kwargs: Any) -> TableCheckpoints:
        return cls(TableClient.from_connection_string(connection, table, **{**RETRY_SETTINGS, **kwargs}))

    @classmethod
    def from_account(cls, account: str, table: str = DEFAULT_TABLE,
                     credential: TokenCredential | None = None) -> TableCheckpoints:
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        return cls(TableClient(f"https://{account}.table.core.windows.net", table, credential=credential,
                               **RETRY_SETTINGS))

    def get(self, name: str) -> str | None:
        try:
            self._ensure_table()
            entity = self.client.get_entity(_PARTITION, name)
        except ResourceNotFoundError:
            return None
        except AzureError as exc:
            raise TransientError(Code.STATE_UNAVAILABLE, f"read checkpoint {name}: {exc}") from exc
        value = entity.get("value")
        return value if isinstance(value, str) else None

    def put(self, name: str, value: str | None) -> None:
        """``None`` forgets the resume point (the next run starts from the beginning)."""
        try:
            self._ensure_table()
            if value is None:
                self.client.delete_entity(_PARTITION, name)
            else:
                self.client.upsert_entity({"PartitionKey": _PARTITION, "RowKey": name, "value": value},
                                          mode=UpdateMode.REPLACE)
        except AzureError as exc:
            raise TransientError(Code.STATE_UNAVAILABLE, f"write checkpoint {name}: {exc}") from exc

    def _ensure_table(self) -> None:
        if not self._table_ready:
            with contextlib.suppress(ResourceExistsError):
                self.client.create_table()
            self._table_ready = True
