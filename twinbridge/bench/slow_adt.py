"""A twin store with Azure Digital Twins' round-trip time: every call sleeps ``latency_s`` first, then goes to the
embedded twin graph (which keeps ADT's semantics: ETags, 412, 404, model validation). Thread-safe, like ADT."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

from shared.adapters.twins.embedded.store import EmbeddedTwinStore


class SlowTwinStore:
    def __init__(self, inner: EmbeddedTwinStore, latency_s: float = 0.0) -> None:
        self.inner = inner
        self.latency_s = latency_s  # may be changed between measurements (e.g. 0 while warming up)
        self.calls = 0
        self._lock = threading.Lock()

    def _wait(self) -> None:
        with self._lock:
            self.calls += 1
        if self.latency_s > 0:
            time.sleep(self.latency_s)

    def get_twin(self, twin_id: str) -> dict[str, Any] | None:
        self._wait()
        return self.inner.get_twin(twin_id)

    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str:
        self._wait()
        return self.inner.create_twin(twin_id, document)

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        self._wait()
        return self.inner.patch_twin(twin_id, patch, etag)

    def delete_twin(self, twin_id: str, etag: str | None = None) -> None:
        self._wait()
        self.inner.delete_twin(twin_id, etag)

    def list_twins(self) -> Iterator[dict[str, Any]]:
        self._wait()
        return self.inner.list_twins()

    def list_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        self._wait()
        return self.inner.list_relationships(twin_id)

    def list_incoming_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        self._wait()
        return self.inner.list_incoming_relationships(twin_id)

    def upsert_relationship(self, twin_id: str, relationship_id: str, relationship: dict[str, Any]) -> str:
        self._wait()
        return self.inner.upsert_relationship(twin_id, relationship_id, relationship)

    def delete_relationship(self, twin_id: str, relationship_id: str) -> None:
        self._wait()
        self.inner.delete_relationship(twin_id, relationship_id)
