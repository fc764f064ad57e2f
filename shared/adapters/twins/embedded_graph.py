"""The embedded twin graph: Azure Digital Twins' data-plane semantics, in memory or persisted to SQLite.

The default TwinStore when no ADT instance is configured, so the app runs on a laptop. What it honours, as ADT
does (docs/azure-behaviour.md §4): weak ETags that change on every write; create-only PUT (If-None-Match: *) → conflict;
PATCH with If-Match → 412 on mismatch, 404 on a missing twin; JSON Patch ``add``/``replace``/``remove`` with
``replace``/``remove`` of a missing property refused (JsonPatchInvalid); model validation against the DTDL
catalog (ValidationFailed); deleting a twin that still has relationships → 400 RelationshipsNotDeleted.

Persisted (a path given), every write is one SQLite transaction committed *before* the in-memory graph changes and
before the caller is answered: a write the file refused (locked, disk full) leaves memory as it was and raises
``TransientError`` (the broker redelivers, and the redelivery finds the old value and writes again, rather than
"duplicate" against a memory the file never saw). A file that cannot be opened (corrupt, locked, not a database)
raises ``TwinGraphFileError`` with one line that says which file and why.
"""

from __future__ import annotations

import itertools
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from shared.errors import Code, TransientError, TwinConflict, TwinMissing, TwinRejected
from shared.ingest.dtdl import ModelCatalog
from shared.twins.patch_plan import fits_on_wire, wire_size

Twin = dict[str, Any]


MAX_REQUEST_BYTES = 32_768  # ADT: twin JSON body (PUT/PATCH) and any request payload
MAX_STRING_BYTES = 4_096  # ADT: one string property, UTF-8
_PATCH_OPS = frozenset({"add", "replace", "remove"})


def _check_size(body: Any) -> None:
    if fits_on_wire(body, MAX_REQUEST_BYTES):  # as azure-core serialises it
        return
    size = wire_size(body)
    if size > MAX_REQUEST_BYTES:
        raise TwinRejected("RequestEntityTooLarge", f"request body of {size} bytes exceeds {MAX_REQUEST_BYTES}")


def _clone(value: Any) -> Any:
    """A private copy of JSON data (all a twin holds): an orjson round trip is several times faster than deepcopy,
    and primitives need no copy at all."""
    if isinstance(value, dict | list):
        return orjson.loads(orjson.dumps(value))
    return value


_second: tuple[int, str] = (-1, "")  # (whole second, its ISO text): formatting a date-time costs ~2 us; once a second


def _now() -> str:
    """UTC now with microseconds and a Z, as ADT writes lastUpdateTime."""
    global _second
    now = time.time()
    whole = int(now)
    second = _second  # one tuple, read once: consistent even if another thread replaces it meanwhile
    if second[0] != whole:
        second = _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{second[1]}.{int((now - whole) * 1_000_000):06d}Z"


def _etag_head() -> str:
    h = uuid.uuid4().hex
    return f'W/"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-'


_ETAG_HEAD = _etag_head()
_etag_counter = itertools.count(1)


def _etag() -> str:
    return f'{_ETAG_HEAD}{next(_etag_counter):012x}"'


class TwinGraphFileError(RuntimeError):
    """The twin graph's SQLite file cannot be used at all (corrupt, not a database, locked at start): one line."""


_Statement = tuple[str, tuple[Any, ...]]


def _user_properties(twin: Twin) -> dict[str, Any]:
    return {k: v for k, v in twin.items() if not k.startswith("$")}


class EmbeddedTwinGraph:
    in_process = True  # no network; every call holds one lock (see shared.ports.in_process)

    def __init__(self, catalog: ModelCatalog | None = None, path: str | Path | None = None,
                 require_models: bool = True) -> None:
        self.catalog = catalog or ModelCatalog()
        self.require_models = require_models and bool(self.catalog.models)
        self._twins: dict[str, Twin] = {}
        self._relationships: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self.calls: dict[str, int] = {"get": 0, "create": 0, "patch": 0, "delete": 0}
        if path is not None:
            self._open(Path(path))

    # ---- TwinStore port -------------------------------------------------------------------------------------
    def get_twin(self, twin_id: str) -> Twin | None:
        with self._lock:
            self.calls["get"] += 1
            twin = self._twins.get(twin_id)
            return _clone(twin) if twin is not None else None

    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str:
        with self._lock:
            self.calls["create"] += 1
            if twin_id in self._twins:
                raise TwinConflict(f"twin {twin_id} already exists (If-None-Match: *)")
            _check_size(document)
            model = document.get("$metadata", {}).get("$model")
            if not isinstance(model, str):
                raise TwinRejected("ValidationFailed", "$metadata.$model is required")
            props = _user_properties(document)
            self._validate(model, props)
            now = _now()
            twin: Twin = {"$dtId": twin_id, "$etag": _etag(),
                          "$metadata": {"$model": model, "$lastUpdateTime": now,
                                        **{name: {"lastUpdateTime": now} for name in props}}}
            twin.update(_clone(props))
            self._write([_upsert_twin(twin)])
            self._twins[twin_id] = twin
            return str(twin["$etag"])

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        with self._lock:
            self.calls["patch"] += 1
            current = self._twins.get(twin_id)
            if current is None:
                raise TwinMissing(f"DigitalTwinNotFound: {twin_id}")
            if etag != "*" and etag != current["$etag"]:
                raise TwinConflict(f"PreconditionFailed: {twin_id} has changed (If-Match)")
            _check_size(patch)
            # Copy on write: the stored twin is never changed in place, so the new version shares every object the
            # patch does not touch (each op copies the objects on its path); no deep copy of the whole twin.
            updated = dict(current)
            updated["$metadata"] = dict(current["$metadata"])
            now = _now()
            touched: set[str] = set()
            for op in patch:
                self._apply_op(updated, op, now, touched)
            model = updated["$metadata"]["$model"]
            if model != current["$metadata"]["$model"]:
                touched = set(_user_properties(updated))  # another model: every property is checked against it
            self._validate(model, {name: updated[name] for name in touched if name in updated})
            updated["$etag"] = _etag()
            updated["$metadata"]["$lastUpdateTime"] = now
            self._write([_upsert_twin(updated)])
            self._twins[twin_id] = updated
            return str(updated["$etag"])

    def delete_twin(self, twin_id: str, etag: str | None = None) -> None:
        """Relationships first (both directions), then the twin; a missing twin is already deleted.

        The ETag is checked before any relationship goes, so a twin re-created meanwhile keeps them. On file, the
        relationships and the twin go in one transaction: all of it is on disk, or none of it."""
        with self._lock:
            self.calls["delete"] += 1
            current = self._twins.get(twin_id)
            if current is not None and etag not in (None, "*") and etag != current["$etag"]:
                raise TwinConflict(f"PreconditionFailed: {twin_id} has changed (If-Match)")
            doomed = [k for k, r in self._relationships.items() if k[0] == twin_id or r["$targetId"] == twin_id]
            statements: list[_Statement] = [(_DELETE_RELATIONSHIP, key) for key in doomed]
            if current is not None:
                statements.append(("DELETE FROM twins WHERE id = ?", (twin_id,)))
            self._write(statements)
            for key in doomed:
                del self._relationships[key]
            self._twins.pop(twin_id, None)

    def delete_twin_only(self, twin_id: str, etag: str | None = None) -> None:
        """The raw DELETE: 400 RelationshipsNotDeleted while any relationship remains, as in ADT."""
        with self._lock:
            self.calls["delete"] += 1
            current = self._twins.get(twin_id)
            if current is None:
                return
            if etag not in (None, "*") and etag != current["$etag"]:
                raise TwinConflict(f"PreconditionFailed: {twin_id} has changed (If-Match)")
            if any(k[0] == twin_id or r["$targetId"] == twin_id for k, r in self._relationships.items()):
                raise TwinRejected("RelationshipsNotDeleted", f"{twin_id} still has relationships")
            self._write([("DELETE FROM twins WHERE id = ?", (twin_id,))])
            del self._twins[twin_id]

    def list_twins(self) -> Iterator[Twin]:
        with self._lock:
            twins = [_clone(t) for t in self._twins.values()]
        return iter(sorted(twins, key=lambda t: str(t["$dtId"])))

    def list_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [_clone(r) for k, r in self._relationships.items() if k[0] == twin_id]

    def list_incoming_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [_clone(r) for r in self._relationships.values() if r["$targetId"] == twin_id]

    def upsert_relationship(self, twin_id: str, relationship_id: str, relationship: dict[str, Any]) -> str:
        with self._lock:
            if twin_id not in self._twins:
                raise TwinMissing(f"DigitalTwinNotFound: {twin_id}")
            target = relationship.get("$targetId")
            if target not in self._twins:
                raise TwinRejected("TargetTwinNotFound", f"target twin {target!r} does not exist")
            if target == twin_id:
                raise TwinRejected("OperationNotAllowed", "a relationship cannot target its own source")
            stored = {**_clone(relationship), "$relationshipId": relationship_id, "$sourceId": twin_id,
                      "$etag": _etag()}
            self._write([("INSERT OR REPLACE INTO relationships (source, id, body) VALUES (?, ?, ?)",
                           (twin_id, relationship_id, orjson.dumps(stored)))])
            self._relationships[(twin_id, relationship_id)] = stored
            return str(stored["$etag"])

    def delete_relationship(self, twin_id: str, relationship_id: str) -> None:
        with self._lock:
            if (twin_id, relationship_id) not in self._relationships:
                raise TwinMissing(f"RelationshipNotFound: {twin_id}/{relationship_id}")
            self._write([(_DELETE_RELATIONSHIP, (twin_id, relationship_id))])
            del self._relationships[(twin_id, relationship_id)]

    # ---- JSON Patch and validation ---------------------------------------------------------------------------
    def _apply_op(self, twin: Twin, op: dict[str, Any], now: str, touched: set[str]) -> None:
        """Apply one JSON Patch op to ``twin``, a shallow copy whose nested objects are still shared with the
        stored version: each object on the op's path is copied before it is changed."""
        kind, pointer = op.get("op"), op.get("path")
        if kind not in _PATCH_OPS or not isinstance(pointer, str) or not pointer.startswith("/"):
            raise TwinRejected("JsonPatchInvalid", f"unsupported operation {op!r}")
        parts = pointer[1:].split("/")
        if "~" in pointer:
            parts = [p.replace("~1", "/").replace("~0", "~") for p in parts]
        if parts == ["$metadata", "$model"] and kind == "replace":
            twin["$metadata"]["$model"] = op.get("value")
            return
        if parts[0].startswith("$"):
            raise TwinRejected("JsonPatchInvalid", f"{pointer} is not writable")
        touched.add(parts[0])
        parent: Any = twin
        for part in parts[:-1]:
            if not isinstance(parent, dict) or part not in parent:
                raise TwinRejected("JsonPatchInvalid", f"{pointer}: parent does not exist")
            child = parent[part]
            if isinstance(child, dict):
                child = parent[part] = dict(child)
            parent = child
        leaf = parts[-1]
        if not isinstance(parent, dict):
            raise TwinRejected("JsonPatchInvalid", f"{pointer}: parent is not an object")
        if kind in ("replace", "remove") and leaf not in parent:
            raise TwinRejected("JsonPatchInvalid", f"{pointer}: cannot {kind} a property that is not set")
        if kind == "remove":
            del parent[leaf]
            if len(parts) == 1:
                twin["$metadata"].pop(leaf, None)
            return
        if "value" not in op:
            raise TwinRejected("JsonPatchInvalid", f"{pointer}: {kind} needs a value")
        parent[leaf] = _clone(op["value"])
        twin["$metadata"][parts[0]] = {"lastUpdateTime": now}

    def _validate(self, model: str, props: dict[str, Any]) -> None:
        declared_props = self.catalog.models.get(model)
        if declared_props is None:
            if self.require_models:
                raise TwinRejected("ValidationFailed", f"model {model} is not uploaded")
            return
        for name, value in props.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise TwinRejected("ValidationFailed", f"{name}: {value} is not a JSON number")
            if isinstance(value, str) and len(value) * 4 > MAX_STRING_BYTES and len(value.encode()) > MAX_STRING_BYTES:
                raise TwinRejected("ValidationFailed", f"{name}: string over {MAX_STRING_BYTES} bytes")
            declared = declared_props.get(name)
            if declared is None:
                raise TwinRejected("ValidationFailed", f"{name} is not a property of {model}")
            if declared.component_model is None and not declared.accepts(value):
                raise TwinRejected("ValidationFailed",
                                   f"{name}: {type(value).__name__} does not match {declared.schema}")

    # ---- SQLite persistence (write-through, committed before memory changes) ------------------------------------
    def _open(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, timeout=_LOCK_WAIT_SECONDS)
            with self._db:
                self._db.execute("CREATE TABLE IF NOT EXISTS twins (id TEXT PRIMARY KEY, body BLOB NOT NULL)")
                self._db.execute("CREATE TABLE IF NOT EXISTS relationships "
                                 "(source TEXT, id TEXT, body BLOB NOT NULL, PRIMARY KEY (source, id))")
            for twin_id, body in self._db.execute("SELECT id, body FROM twins"):
                self._twins[twin_id] = orjson.loads(body)
            for source, rel_id, body in self._db.execute("SELECT source, id, body FROM relationships"):
                self._relationships[(source, rel_id)] = orjson.loads(body)
        except (sqlite3.Error, OSError, orjson.JSONDecodeError) as exc:
            self.close()
            raise TwinGraphFileError(f"twin graph file {path} cannot be used: {exc}") from None

    def _write(self, statements: list[_Statement]) -> None:
        """Run ``statements`` as one transaction and commit it, or change nothing on disk and raise
        TransientError (the caller then changes nothing in memory either)."""
        if self._db is None or not statements:
            return
        try:
            with self._db:  # commits on success, rolls back on any exception
                for sql, params in statements:
                    self._db.execute(sql, params)
        except sqlite3.Error as exc:
            raise TransientError(Code.ADT_UNAVAILABLE, f"twin graph file not written: {exc}") from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None


# How long a write waits for another process's lock on the file before it fails (transient: redelivered).
_LOCK_WAIT_SECONDS = 2.0
_DELETE_RELATIONSHIP = "DELETE FROM relationships WHERE source = ? AND id = ?"


def _upsert_twin(twin: Twin) -> _Statement:
    return "INSERT OR REPLACE INTO twins (id, body) VALUES (?, ?)", (twin["$dtId"], orjson.dumps(twin))
