"""Where the twin graph keeps its documents: SQLite (one transaction per acknowledged write) or nowhere.

The graph computes a write's whole effect first, hands it here as a list of puts/deletes, and changes its memory
only after ``write`` returned — so an acknowledged write is on disk, and a failed commit leaves memory as it was.
A commit the file refuses (locked by another process past ``LOCK_WAIT_SECONDS``, disk full) is ``AdtError`` 503
ServiceUnavailable: a transient failure, as ADT's own 503 (the in-process store raises TransientError, the broker
redelivers; the emulator answers 503 and the SDK retries). A file that cannot be opened or read at all (corrupt, not
a database, locked at start) is ``TwinGraphFileError`` with one line that says which file and why.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import orjson

from shared.adapters.twins.embedded.errors import AdtError

# One change: (kind, key, document) — document None deletes the key.
Change = tuple[str, str, Any]


class Storage(Protocol):
    def load(self) -> Iterator[tuple[str, str, Any]]: ...

    def write(self, changes: Sequence[Change]) -> None: ...

    def close(self) -> None: ...


class MemoryStorage:
    """No persistence: the graph's memory is the only copy."""

    def load(self) -> Iterator[tuple[str, str, Any]]:
        return iter(())

    def write(self, changes: Sequence[Change]) -> None:
        return None

    def close(self) -> None:
        return None


# How long a write waits for another process's lock on the file before it fails (transient: redelivered).
LOCK_WAIT_SECONDS = 2.0


class TwinGraphFileError(RuntimeError):
    """The twin graph's SQLite file cannot be used at all (corrupt, not a database, locked at start): one line."""


class SqliteStorage:
    def __init__(self, path: str | Path) -> None:
        target = Path(path)
        self.path = target
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # check_same_thread=False: the server's threads share it; the graph's lock serialises every use.
            self._db = sqlite3.connect(target, check_same_thread=False, isolation_level=None,
                                       timeout=LOCK_WAIT_SECONDS)
        except (sqlite3.Error, OSError) as exc:
            raise TwinGraphFileError(f"twin graph file {target} cannot be used: {exc}") from None
        self._lock = threading.Lock()
        try:
            tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "documents" not in tables and {"twins", "relationships"} <= tables:
                self._db.close()
                raise TwinGraphFileError(f"twin graph file {target} cannot be used: it holds the retired embedded "
                                         "graph's tables (twins, relationships); delete it and run again")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable against process crashes
            self._db.execute("CREATE TABLE IF NOT EXISTS documents (kind TEXT NOT NULL, key TEXT NOT NULL, "
                             "seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (kind, key))")
            row = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM documents").fetchone()
            self._seq = int(row[0])
        except sqlite3.Error as exc:
            self._db.close()
            raise TwinGraphFileError(f"twin graph file {target} cannot be used: {exc}") from None

    def load(self) -> Iterator[tuple[str, str, Any]]:
        try:
            rows = self._db.execute("SELECT kind, key, body FROM documents ORDER BY seq").fetchall()
            documents = [(kind, key, orjson.loads(body)) for kind, key, body in rows]
        except (sqlite3.Error, orjson.JSONDecodeError) as exc:
            self._db.close()
            raise TwinGraphFileError(f"twin graph file {self.path} cannot be used: {exc}") from None
        return iter(documents)

    def write(self, changes: Sequence[Change]) -> None:
        try:
            self._write(changes)
        except sqlite3.Error as exc:
            raise AdtError(503, "ServiceUnavailable", f"twin graph file {self.path} not written: {exc}") from None

    def _write(self, changes: Sequence[Change]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for kind, key, document in changes:
                    if document is None:
                        self._db.execute("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key))
                    else:
                        self._seq += 1
                        # seq keeps first-insert order for models (listing order) and grows on every write.
                        self._db.execute(
                            "INSERT INTO documents (kind, key, seq, body) VALUES (?, ?, ?, ?) "
                            "ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body",
                            (kind, key, self._seq, orjson.dumps(document)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self._db.close()
