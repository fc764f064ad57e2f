"""In-memory forwarding records (tests, local runs): key → when it was forwarded, forgotten after the retention."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

DEFAULT_RETENTION_SECONDS = 48 * 3600  # ≥ 25 h: Event Grid retries for up to 24 h, Event Hubs keeps ≥ 1 day


class MemoryForwardingStore:
    def __init__(self, retention_seconds: float = DEFAULT_RETENTION_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.retention = retention_seconds
        self.clock = clock
        self._records: dict[str, float] = {}
        self._lock = threading.Lock()

    def seen(self, keys: Sequence[str]) -> set[str]:
        horizon = self.clock() - self.retention
        with self._lock:
            return {k for k in keys if self._records.get(k, -1.0) >= horizon}

    def record(self, keys: Sequence[str]) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                self._records[key] = now
            horizon = now - self.retention
            for key in [k for k, t in self._records.items() if t < horizon]:
                del self._records[key]

    def purge(self, limit: int | None = None) -> int:
        """Forget records past the retention, at most ``limit`` (None: all); the number forgotten."""
        horizon = self.clock() - self.retention
        with self._lock:
            expired = [k for k, t in self._records.items() if t < horizon][:limit]
            for key in expired:
                del self._records[key]
        return len(expired)

    def __len__(self) -> int:
        return len(self._records)
