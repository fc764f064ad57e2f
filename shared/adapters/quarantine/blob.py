"""Quarantine on Azure Blob Storage (the ``AzureWebJobsStorage`` account): one JSON blob per record.

Why Blob rather than Table: a record keeps the whole original event for replay, and an Event Grid event may be
up to 1 MB while a Table property holds 64 KiB (1 MiB per entity); a blob holds it as one readable JSON document
that Storage Explorer or ``az storage blob download`` shows as is. Event Grid's own dead-lettering writes blobs too.

* ``put`` is idempotent on ``record_id`` (deterministic per event and error code): create-only upload; when the
  blob already exists the first record is kept (a redelivered failure is the same failure).
* ``list(since)`` reads the listing's metadata (``receivedat``, ``code``) so filtering by time downloads only the
  records it returns; ``get``/``delete`` address a record by id.
* Outages, 5xx and timeouts past azure-core's retry budget are ``TransientError(STATE_UNAVAILABLE)``: the
  pipeline lets them out, so the batch comes again rather than losing a poison event.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, ClassVar, Self, TypeVar

import orjson
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from shared.adapters.storage_calls import CreateOnce, call_storage, client_options
from shared.ports import QuarantineRecord

DEFAULT_CONTAINER = "twinbridge-quarantine"
DEFAULT_DEADLETTER_CONTAINER = "eventgrid-deadletter"
PREFIX = "records/"
RETRY_SETTINGS: dict[str, Any] = {"retry_total": 3, "retry_backoff_factor": 0.4, "retry_backoff_max": 2,
                                  "connection_timeout": 5, "read_timeout": 20}
T = TypeVar("T")


def parse_time(text: str) -> datetime:
    """``received_at`` as written by build_record (``datetime.isoformat``), also accepting a trailing Z."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _BlobContainer:
    """A container of the app's storage account, addressed by connection string or by identity, created on first
    use; its calls go through call_storage (failures that mean "try again later" are TransientError)."""

    DEFAULT_CONTAINER: ClassVar[str]
    WHAT: ClassVar[str]  # for messages: "quarantine container"

    def __init__(self, container: ContainerClient) -> None:
        self.container = container
        self._container = CreateOnce(container.create_container, self.WHAT)

    @classmethod
    def from_connection_string(cls, connection: str, container: str | None = None, **client_kwargs: Any) -> Self:
        options = client_options({**RETRY_SETTINGS, **client_kwargs}, blob=True)
        service = BlobServiceClient.from_connection_string(connection, **options)
        return cls(service.get_container_client(container or cls.DEFAULT_CONTAINER))

    @classmethod
    def from_account(cls, account: str, container: str | None = None,
                     credential: TokenCredential | None = None) -> Self:
        """Identity-based (``AzureWebJobsStorage__accountName``): Storage Blob Data Contributor on the account."""
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        service = BlobServiceClient(f"https://{account}.blob.core.windows.net", credential=credential,
                                    **client_options(RETRY_SETTINGS, blob=True))
        return cls(service.get_container_client(container or cls.DEFAULT_CONTAINER))

    def _download(self, what: str, name: str) -> bytes | None:
        """The blob's content; None when it is not there."""
        def download() -> bytes | None:
            try:
                return bytes(self.container.download_blob(name).readall())
            except ResourceNotFoundError:
                return None

        return self._call(what, download)

    def _call(self, what: str, operation: Callable[[], T]) -> T:
        return call_storage(self._container, what, "Blob Storage", operation)


class BlobQuarantine(_BlobContainer):
    DEFAULT_CONTAINER = DEFAULT_CONTAINER
    WHAT = "quarantine container"

    # ---- Quarantine port ---------------------------------------------------------------------------------
    def put(self, record: QuarantineRecord) -> None:
        body = orjson.dumps(record.to_data(), default=str, option=orjson.OPT_INDENT_2)
        metadata = {"receivedat": record.received_at, "code": record.code, "source": record.source}

        def upload() -> None:
            # An existing blob is the same event failing the same way again: one record is enough.
            with contextlib.suppress(ResourceExistsError):
                self.container.upload_blob(_name(record.record_id), body, overwrite=False, metadata=metadata,
                                           content_settings=ContentSettings(content_type="application/json"))

        self._call(f"quarantine {record.record_id}", upload)

    # ---- operator API ------------------------------------------------------------------------------------
    def list(self, since: datetime | None = None) -> list[QuarantineRecord]:
        """Records received at or after ``since`` (all when None), oldest first."""
        def names() -> list[str]:
            chosen: list[tuple[str, str]] = []
            for blob in self.container.list_blobs(name_starts_with=PREFIX, include=["metadata"]):
                received = (blob.metadata or {}).get("receivedat", "")
                if since is None or not received or parse_time(received) >= since:
                    chosen.append((received, blob.name))
            return [name for _, name in sorted(chosen)]

        records = []
        for name in self._call("list quarantine", names):
            record = self.get(name[len(PREFIX):-len(".json")])
            if record is not None and (since is None or parse_time(record.received_at) >= since):
                records.append(record)
        return records

    def get(self, record_id: str) -> QuarantineRecord | None:
        data = self._download(f"read quarantine record {record_id}", _name(record_id))
        return None if data is None else QuarantineRecord.from_data(orjson.loads(data))

    def delete(self, record_id: str) -> bool:
        """Remove one record; False when it was not there."""
        def remove() -> bool:
            try:
                self.container.delete_blob(_name(record_id))
                return True
            except ResourceNotFoundError:
                return False

        return self._call(f"delete quarantine record {record_id}", remove)

    def __iter__(self) -> Iterator[QuarantineRecord]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self._call("count quarantine", lambda: list(self.container.list_blob_names(
            name_starts_with=PREFIX))))


def _name(record_id: str) -> str:
    if not record_id or not all(c.isalnum() or c in "-_" for c in record_id):
        raise ValueError(f"not a quarantine record id: {record_id!r}")
    return f"{PREFIX}{record_id}.json"



class BlobDeadLetters(_BlobContainer):
    """Event Grid's dead-letter container (infra/main.json: on the app's storage account), as a
    shared.doors.dead_letters.DeadLetterSource. Storage failures are TransientError, as for the quarantine."""

    DEFAULT_CONTAINER = DEFAULT_DEADLETTER_CONTAINER
    WHAT = "dead-letter container"

    def names(self) -> Iterator[str]:
        return iter(self._call("list dead-letters", lambda: list(self.container.list_blob_names())))

    def read(self, name: str) -> bytes | None:
        return self._download(f"read dead-letter {name}", name)

    def delete(self, name: str) -> None:
        def remove() -> None:
            with contextlib.suppress(ResourceNotFoundError):
                self.container.delete_blob(name)

        self._call(f"delete dead-letter {name}", remove)
