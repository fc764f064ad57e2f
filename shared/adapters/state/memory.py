"""In-memory StateStore: the default for local runs and tests; same conditional-write contract as Table Storage."""

from __future__ import annotations

import itertools
import threading

from shared.errors import StateConflict
from shared.twins.freshness import Shadow


class MemoryStateStore:
    in_process = True  # no I/O: see shared.ports.in_process

    def __init__(self) -> None:
        self._records: dict[str, tuple[Shadow, str]] = {}
        self._lock = threading.Lock()
        self._versions = itertools.count(1)

    def load(self, twin_id: str) -> tuple[Shadow, str] | None:
        with self._lock:
            found = self._records.get(twin_id)
            return None if found is None else (found[0].copy(), found[1])

    def version(self, twin_id: str) -> str | None:
        with self._lock:
            found = self._records.get(twin_id)
            return None if found is None else found[1]

    def save(self, shadow: Shadow, etag: str | None) -> str:
        with self._lock:
            current = self._records.get(shadow.twin_id)
            if etag is None and current is not None:
                raise StateConflict(f"state of {shadow.twin_id} already exists")
            if etag is not None and (current is None or current[1] != etag):
                raise StateConflict(f"state of {shadow.twin_id} changed since it was read")
            new_etag = f"v{next(self._versions)}"
            self._records[shadow.twin_id] = (shadow.copy(), new_etag)
            return new_etag

    def __len__(self) -> int:
        return len(self._records)
