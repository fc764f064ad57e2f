"""In-memory Checkpoints: local runs and tests. A Function App needs a durable one (Table Storage) to resume."""

from __future__ import annotations

import threading


class MemoryCheckpoints:
    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> str | None:
        with self._lock:
            return self._values.get(name)

    def put(self, name: str, value: str | None) -> None:
        """``None`` forgets the resume point (the next run starts from the beginning)."""
        with self._lock:
            if value is None:
                self._values.pop(name, None)
            else:
                self._values[name] = value
