"""Shared helpers for the reliability tests: state stores under test, counting and recording wrappers."""

from __future__ import annotations

import threading
import time
from typing import Any

from shared.adapters.state.table import TableStateStore
from shared.ports import StateStore
from shared.twins.freshness import CONNECTION, Shadow
from twinbridge.azurite import Azurite


def table_store(azurite: Azurite, table: str) -> TableStateStore:
    return TableStateStore.from_connection_string(azurite.connection_string, table)


class RecordingState:
    """Wraps a StateStore and keeps every shadow it successfully saved, to check sequences never go back."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.saved: list[Shadow] = []
        self._lock = threading.Lock()

    def load(self, twin_id: str) -> tuple[Shadow, str] | None:
        return self.inner.load(twin_id)

    def version(self, twin_id: str) -> str | None:
        return self.inner.version(twin_id)

    def save(self, shadow: Shadow, etag: str | None) -> str:
        new_etag = self.inner.save(shadow, etag)
        with self._lock:
            self.saved.append(shadow.copy())
        return new_etag

    def sequence_regressions(self) -> int:
        """How many successive saves of one twin lowered its stored connection sequence number."""
        last: dict[str, tuple[Any, ...]] = {}
        regressions = 0
        for shadow in self.saved:
            mark = shadow.marks.get(CONNECTION)
            if mark is None:
                continue
            before = last.get(shadow.twin_id)
            if before is not None and mark.order < before:
                regressions += 1
            last[shadow.twin_id] = mark.order
        return regressions


class SlowState:
    """Adds a short pause after each read, releasing the GIL as real storage I/O does, so that concurrent
    instances really interleave between reading a shadow and writing it back (the race the etags guard)."""

    def __init__(self, inner: StateStore, pause: float = 0.001) -> None:
        self.inner = inner
        self.pause = pause

    def load(self, twin_id: str) -> tuple[Shadow, str] | None:
        found = self.inner.load(twin_id)
        time.sleep(self.pause)
        return found

    def version(self, twin_id: str) -> str | None:
        found = self.inner.version(twin_id)
        time.sleep(self.pause)
        return found

    def save(self, shadow: Shadow, etag: str | None) -> str:
        return self.inner.save(shadow, etag)
