"""Local quarantines: in memory (tests) and a JSON Lines file (local runs, the replay CLI)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import orjson

from shared.ports import QuarantineRecord


class MemoryQuarantine:
    def __init__(self) -> None:
        self.records: dict[str, QuarantineRecord] = {}

    def put(self, record: QuarantineRecord) -> None:
        self.records[record.record_id] = record

    def __iter__(self) -> Iterator[QuarantineRecord]:
        return iter(list(self.records.values()))

    def __len__(self) -> int:
        return len(self.records)


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
