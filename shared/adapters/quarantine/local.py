"""Local quarantines: in memory (tests) and a JSON Lines file (local runs, the replay CLI)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import orjson

from shared.ports import QuarantineRecord


class MemoryQuarantine:
    in_process = True  # no I/O: the pipeline writes its records on the calling thread (shared.ports.in_process)

    def __init__(self) -> None:
        self.records: dict[str, QuarantineRecord] = {}

    def put(self, record: QuarantineRecord) -> None:
        self.records[record.record_id] = record

    def __iter__(self) -> Iterator[QuarantineRecord]:
        return iter(list(self.records.values()))

    def __len__(self) -> int:
        return len(self.records)

    def list(self, since: datetime | None = None) -> list[QuarantineRecord]:
        return _since(self, since)

    def get(self, record_id: str) -> QuarantineRecord | None:
        return self.records.get(record_id)

    def delete(self, record_id: str) -> bool:
        return self.records.pop(record_id, None) is not None


class JsonlQuarantine:
    """Appends one JSON object per line. A redelivered failure appends again; readers keep the last per id."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def put(self, record: QuarantineRecord) -> None:
        line = orjson.dumps(record.to_data(), default=str) + b"\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("ab") as out:
                out.write(line)

    def __iter__(self) -> Iterator[QuarantineRecord]:
        if not self.path.exists():
            return iter(())
        latest: dict[str, QuarantineRecord] = {}
        with self.path.open("rb") as lines:
            for line in lines:
                if line.strip():
                    record = QuarantineRecord.from_data(orjson.loads(line))
                    latest[record.record_id] = record
        return iter(list(latest.values()))

    def list(self, since: datetime | None = None) -> list[QuarantineRecord]:
        return _since(self, since)

    def get(self, record_id: str) -> QuarantineRecord | None:
        return next((r for r in self if r.record_id == record_id), None)

    def delete(self, record_id: str) -> bool:
        """Rewrite the file without that record (atomically: a temporary file renamed over it)."""
        with self._lock:
            if not self.path.exists():
                return False
            kept: list[bytes] = []
            found = False
            with self.path.open("rb") as lines:
                for line in lines:
                    if line.strip() and orjson.loads(line).get("record_id") == record_id:
                        found = True
                    elif line.strip():
                        kept.append(line if line.endswith(b"\n") else line + b"\n")
            if found:
                scratch = self.path.with_name(self.path.name + ".tmp")
                scratch.write_bytes(b"".join(kept))
                os.replace(scratch, self.path)
            return found


def _since(records: Iterator[QuarantineRecord] | MemoryQuarantine | JsonlQuarantine,
           since: datetime | None) -> list[QuarantineRecord]:
    """Records received at or after ``since``, oldest first."""
    chosen = [r for r in records if since is None or datetime.fromisoformat(r.received_at) >= since]
    return sorted(chosen, key=lambda r: r.received_at)
