"""Ports: what the core needs from the outside world, each a small Protocol (their errors: shared/errors.py).

Every adapter (Azure or embedded) honours the same semantics, so a behaviour seen locally is the one seen in Azure:

* ``TwinStore`` — Azure Digital Twins: create-only PUT (If-None-Match: *), conditional PATCH (If-Match: etag),
  delete after removing relationships. Conflicts surface as ``TwinConflict``; a twin that vanished as
  ``TwinMissing``; a write the service refuses (400) as ``TwinRejected``; throttling and outages past the retry
  budget as ``TransientError``.
* ``StateStore`` — per-twin shadows (freshness records) with optimistic concurrency: ``save`` with ``etag=None``
  inserts and fails if the record exists, otherwise it replaces only if the etag still matches; both failures
  are ``StateConflict``.
* ``Quarantine`` — where permanent failures go, with everything needed to replay them later.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from shared.twins.freshness import Shadow


def in_process(store: object) -> bool:
    """True for an adapter that does no I/O (it declares ``in_process = True``: the embedded twin graph, the memory
    state store). Writing several twins at once only helps while calls wait on the network; over in-process stores
    the pipeline's helper threads would just take turns at the GIL. Adapters that do not say are assumed remote."""
    return getattr(store, "in_process", False) is True


class TwinStore(Protocol):
    def get_twin(self, twin_id: str) -> dict[str, Any] | None: ...

    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str: ...

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str: ...

    def delete_twin(self, twin_id: str, etag: str | None = None) -> None: ...

    def list_twins(self) -> Iterator[dict[str, Any]]: ...

    def list_relationships(self, twin_id: str) -> list[dict[str, Any]]: ...

    def list_incoming_relationships(self, twin_id: str) -> list[dict[str, Any]]: ...

    def upsert_relationship(self, twin_id: str, relationship_id: str, relationship: dict[str, Any]) -> str: ...

    def delete_relationship(self, twin_id: str, relationship_id: str) -> None: ...


class StateStore(Protocol):
    def load(self, twin_id: str) -> tuple[Shadow, str] | None: ...

    def save(self, shadow: Shadow, etag: str | None) -> str: ...

    def version(self, twin_id: str) -> str | None:
        """The record's current etag (None when there is none), without reading the shadow: the applier's last
        check (is what we just showed still the latest?) needs only that."""
        ...


@runtime_checkable
class ExpiringStateStore(StateStore, Protocol):
    """A state store whose records stay until deleted (Table Storage has no TTL): the reconcile timer purges the
    expired ones, a bounded number per run."""

    def purge_expired(self, now: datetime | None = None, limit: int = 100) -> int: ...


@dataclass
class QuarantineRecord:
    """One permanent failure. ``event`` is the whole original event (for replay); logs use ``excerpt`` only."""

    record_id: str
    code: str
    message: str
    problems: list[dict[str, str]]
    event_id: str | None
    event_type: str | None
    subject: str | None
    twin_id: str | None
    received_at: str
    excerpt: str
    event: Any = None
    source: str = "ingest"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> QuarantineRecord:
        return cls(**data)


class Quarantine(Protocol):
    def put(self, record: QuarantineRecord) -> None: ...


class Checkpoints(Protocol):
    """Small named resume points (e.g. the registry reconcile's continuation token). Last write wins."""

    def get(self, name: str) -> str | None: ...

    def put(self, name: str, value: str | None) -> None: ...
