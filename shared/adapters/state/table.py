"""StateStore on Azure Table Storage (the ``AzureWebJobsStorage`` account): one entity per twin shadow.

Same contract as ``MemoryStateStore`` (ports.py): ``save(shadow, None)`` is an insert (``create_entity``; 409 →
``StateConflict``), ``save(shadow, etag)`` a replace conditional on the entity's ETag (``update_entity`` with
``IfNotModified``; 412, or 404 after a purge → ``StateConflict``). Storage outages, 5xx, throttling and timeouts
past azure-core's (short) retry budget → ``TransientError(STATE_UNAVAILABLE)`` so the broker redelivers.

Keys: PartitionKey = the twin id, escaped (Table keys forbid ``/ \\ # ?``, control characters and ``%`` is our
escape character), hashed when too long; RowKey = ``shadow``. One partition per twin spreads load and keeps every
write a single-entity operation. The shadow is orjson, zlib-compressed when large, split into binary properties of
at most 60 000 bytes (the service limit is 64 KiB per property, 1 MiB per entity).

Expiry is decided here in code, not by a store TTL: only a shadow that is nothing but a tombstone (the device was
deleted and nothing newer arrived) whose last write is older than the retention (≥ 25 h, beyond Event Grid's 24 h
redelivery horizon) may be purged, by ``purge_expired(now, limit)``, a bounded amount per run, each delete
conditional on the ETag read so that a shadow revived meanwhile survives.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import orjson
from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.adapters.storage_calls import CreateOnce, call_storage, client_options
from shared.errors import StateConflict, TransientError
from shared.twins.freshness import DELETED, Shadow

log = logging.getLogger("twinbridge.state.table")

DEFAULT_TABLE = "twinbridgestate"
ROW_KEY = "shadow"
MIN_RETENTION = timedelta(hours=25)  # longer than Event Grid's 24 h redelivery horizon
CHUNK_BYTES = 60_000  # under the 64 KiB per-property limit
COMPRESS_ABOVE = 8_192
MAX_CHUNKS = 16  # 960 kB: the entity limit is 1 MiB with every property counted
MAX_KEY_CHARS = 256
# A short azure-core retry budget: the applier's conflict loop and the broker's redelivery do the rest.
RETRY_SETTINGS: dict[str, Any] = {
    "retry_total": 3,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 2,
    "connection_timeout": 5,
    "read_timeout": 10,
}
_FORBIDDEN = frozenset("/\\#?%")

T = TypeVar("T")


class StateTooLarge(ValueError):
    """A shadow past the 1 MiB entity limit even compressed: a mapping that feeds far too many properties."""


def encode_key(twin_id: str) -> str:
    """A Table-safe key that maps distinct twin ids to distinct keys (percent-escaping, then a hash if too long)."""
    out = []
    for char in twin_id:
        code = ord(char)
        if char in _FORBIDDEN or code < 0x20 or 0x7F <= code <= 0x9F:
            out.append("".join(f"%{b:02X}" for b in char.encode()))
        else:
            out.append(char)
    key = "".join(out)
    if len(key) > MAX_KEY_CHARS or not key:
        key = "~sha256~" + hashlib.sha256(twin_id.encode()).hexdigest()
    return key


def pack(shadow: Shadow) -> dict[str, Any]:
    """The entity properties holding ``shadow`` (without keys)."""
    raw = orjson.dumps(shadow.to_data())
    encoding = "json"
    if len(raw) > COMPRESS_ABOVE:
        raw, encoding = zlib.compress(raw, 6), "json+zlib"
    chunks = [raw[i:i + CHUNK_BYTES] for i in range(0, len(raw), CHUNK_BYTES)] or [b""]
    if len(chunks) > MAX_CHUNKS:
        raise StateTooLarge(f"state of {shadow.twin_id} is {len(raw)} bytes {encoding}: over the entity limit")
    props: dict[str, Any] = {f"d{i}": chunk for i, chunk in enumerate(chunks)}
    props.update({"twinId": shadow.twin_id, "encoding": encoding, "chunks": len(chunks),
                  "tombstoneOnly": is_tombstone_only(shadow)})
    return props


def unpack(entity: dict[str, Any]) -> Shadow:
    raw = b"".join(bytes(entity[f"d{i}"]) for i in range(int(entity["chunks"])))
    if entity["encoding"] == "json+zlib":
        raw = zlib.decompress(raw)
    return Shadow.from_data(orjson.loads(raw))


def is_tombstone_only(shadow: Shadow) -> bool:
    return shadow.lifecycle == DELETED and not shadow.has_device_data()


class TableStateStore:
    def __init__(self, client: TableClient, *, retention: timedelta = MIN_RETENTION,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if retention < MIN_RETENTION:
            raise ValueError(f"retention {retention} is shorter than the redelivery horizon ({MIN_RETENTION})")
        self.client = client
        self.retention = retention
        self.clock = clock
        self._table = CreateOnce(client.create_table, "state table")

    @classmethod
    def from_connection_string(cls, connection: str, table: str = DEFAULT_TABLE, *,
                               retention: timedelta = MIN_RETENTION, **client_kwargs: Any) -> TableStateStore:
        """``AzureWebJobsStorage`` as a connection string (``UseDevelopmentStorage=true`` works).
        ``client_kwargs`` override the azure-core settings (``RETRY_SETTINGS``)."""
        client = TableClient.from_connection_string(connection, table,
                                                   **client_options({**RETRY_SETTINGS, **client_kwargs}))
        return cls(client, retention=retention)

    @classmethod
    def from_account(cls, account: str, table: str = DEFAULT_TABLE, credential: TokenCredential | None = None, *,
                     retention: timedelta = MIN_RETENTION, **client_kwargs: Any) -> TableStateStore:
        """Identity-based: ``AzureWebJobsStorage__accountName`` + DefaultAzureCredential (the identity needs
        Storage Table Data Contributor on the account)."""
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        endpoint = f"https://{account}.table.core.windows.net"
        client = TableClient(endpoint, table, credential=credential,
                             **client_options({**RETRY_SETTINGS, **client_kwargs}))
        return cls(client, retention=retention)

    # ---- StateStore port ---------------------------------------------------------------------------------
    def load(self, twin_id: str) -> tuple[Shadow, str] | None:
        key = encode_key(twin_id)

        def read() -> Any:
            try:
                return self.client.get_entity(key, ROW_KEY)  # a TableEntity: a dict with .metadata (etag)
            except ResourceNotFoundError as exc:
                if _table_missing(exc):
                    raise
                return None

        entity = self._call(f"read state of {twin_id}", read)
        if entity is None:
            return None
        shadow = unpack(dict(entity))
        if shadow.twin_id != twin_id:  # only possible with a hash collision of two over-long ids
            raise StateConflict(f"state key of {twin_id} is held by {shadow.twin_id}")
        etag = entity_etag(entity)
        return shadow, etag

    def version(self, twin_id: str) -> str | None:
        key = encode_key(twin_id)

        def read_etag() -> Any:
            try:  # the keys only: the etag comes with any entity, the shadow's (possibly large) body is not needed
                return self.client.get_entity(key, ROW_KEY, select=["PartitionKey"])
            except ResourceNotFoundError as exc:
                if _table_missing(exc):
                    raise
                return None

        entity = self._call(f"read state version of {twin_id}", read_etag)
        return None if entity is None else entity_etag(entity)

    def save(self, shadow: Shadow, etag: str | None) -> str:
        entity = {"PartitionKey": encode_key(shadow.twin_id), "RowKey": ROW_KEY, **pack(shadow),
                  "updatedAt": self.clock()}

        def write() -> dict[str, Any]:
            try:
                if etag is None:
                    return dict(self.client.create_entity(entity))
                return dict(self.client.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                                      match_condition=MatchConditions.IfNotModified))
            except ResourceExistsError as exc:
                raise StateConflict(f"state of {shadow.twin_id} already exists") from exc
            except ResourceModifiedError as exc:
                raise StateConflict(f"state of {shadow.twin_id} changed since it was read") from exc
            except ResourceNotFoundError as exc:
                if _table_missing(exc):
                    raise
                raise StateConflict(f"state of {shadow.twin_id} was purged since it was read") from exc
            except HttpResponseError as exc:
                if exc.status_code == 412:
                    raise StateConflict(f"state of {shadow.twin_id} changed since it was read") from exc
                raise

        return str(self._call(f"write state of {shadow.twin_id}", write)["etag"])

    # ---- expiry ------------------------------------------------------------------------------------------
    def purge_expired(self, now: datetime | None = None, limit: int = 100) -> int:
        """Delete up to ``limit`` tombstone-only shadows last written before ``now - retention``; the count."""
        cutoff = (now or self.clock()) - self.retention

        def candidates() -> list[dict[str, Any]]:
            query = self.client.query_entities("tombstoneOnly eq true and updatedAt lt @cutoff",
                                               parameters={"cutoff": cutoff}, results_per_page=min(limit, 1000),
                                               select=["PartitionKey", "RowKey", "updatedAt", "tombstoneOnly"])
            found: list[dict[str, Any]] = []
            for entity in query:
                found.append(dict(entity) | {"etag": entity_etag(entity)})
                if len(found) >= limit:
                    break
            return found

        purged = 0
        for entity in self._call("list expired state", candidates):
            def delete(found: dict[str, Any] = entity) -> None:
                self.client.delete_entity(found["PartitionKey"], found["RowKey"], etag=found["etag"],
                                          match_condition=MatchConditions.IfNotModified)
            try:
                self._call("purge expired state", delete)
                purged += 1
            except TransientError:
                raise
            except (ResourceModifiedError, HttpResponseError) as exc:
                # Written again since the query (412): it is alive, leave it.
                log.info("state %s changed during the purge, kept (%s)", entity["PartitionKey"], exc)
        return purged

    def iter_shadows(self) -> Iterator[tuple[Shadow, str]]:
        """Every stored shadow (operator tooling and tests)."""
        entities = self._call("list state", lambda: list(self.client.list_entities()))
        for entity in entities:
            yield unpack(dict(entity)), entity_etag(entity)

    # ---- plumbing ----------------------------------------------------------------------------------------
    def _call(self, what: str, operation: Callable[[], T]) -> T:
        def once_more_if_the_table_vanished() -> T:
            try:
                return operation()
            except ResourceNotFoundError as exc:
                if not _table_missing(exc):
                    raise
                self._table.forget()  # deleted under us: create it again and retry once
                self._table.ensure(what)
                return operation()

        # A 412 (ResourceModifiedError) is an answer about the data, not transient: it reaches the caller as is.
        return call_storage(self._table, what, "Table Storage", once_more_if_the_table_vanished)


def entity_etag(entity: Any) -> str:
    metadata = getattr(entity, "metadata", None)
    if isinstance(metadata, dict) and metadata.get("etag"):
        return str(metadata["etag"])
    return str(entity["etag"])


def _table_missing(exc: ResourceNotFoundError) -> bool:
    return "TableNotFound" in str(getattr(exc, "error_code", "") or "") or "TableNotFound" in str(exc)
