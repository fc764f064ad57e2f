"""The twin graph with Azure Digital Twins' data-plane semantics: one engine for the emulator (``adt serve``) and
for the in-process embedded store.

Every public method is one ADT operation (api-version 2023-10-31) and either returns what ADT returns or raises
``AdtError`` with ADT's status and code (the codes the spec lists per operation). Facts relied on, with sources:

* PUT twin is an upsert (200); ``If-None-Match: *`` makes it create-only (412 PreconditionFailed). Twin documents
  carry ``$dtId``, a weak ``$etag`` that changes on every write, and ``$metadata`` with ``$model``,
  ``$lastUpdateTime`` and per property ``lastUpdateTime`` and the writable ``sourceTime``; a component holds its
  own ``$metadata`` (``$lastUpdateTime`` and its properties' entries) — spec examples PutTwinAdvancedExample.json,
  GetTwin.json; Learn how-to-manage-twin ("Update a property's sourceTime").
* PATCH takes JSON Patch ``add``/``replace``/``remove`` (204); ``replace``/``remove`` of an absent value is
  refused (JsonPatchInvalid); ``/$metadata/<p>/sourceTime`` and ``/<component>/$metadata/<p>/sourceTime`` are
  writable; ``replace /$metadata/$model`` migrates when the twin stays valid — PatchTwinAdvancedExample.json,
  PatchComponentAdvancedExample.json, how-to-manage-twin.
* DELETE twin: 404 DigitalTwinNotFound when absent, 400 RelationshipsNotDeleted while relationships remain.
* Relationships: 404 DigitalTwinNotFound (source), 404 TargetTwinNotFound, 400 OperationNotAllowed (self-loop);
  listing a missing twin's relationships is 404 — spec operation descriptions (digitaltwins.json 2023-10-31).
* Models: upload all-or-nothing (DTDLParserError, 409 ModelAlreadyExists), delete refused while another model
  references it (409 ModelReferencesNotDeleted), decommission by ``replace /decommissioned`` (ModelAdd.json,
  ModelUpdateDecommissioned.json); creating a twin of a decommissioned model is 400 ModelDecommissioned.
* Limits (Learn reference-service-limits): 32 KB twin/patch body, 4 KB strings, 1 KB property names.

Writes are serialised by one lock; with SQLite storage a write is committed before memory changes and before the
caller hears about it. Listeners (``subscribe``) get each change notification after its commit, in write order.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import orjson

from shared.adapters.twins.embedded import dtdl
from shared.adapters.twins.embedded.errors import (
    AdtError,
    bad_request,
    conflict,
    not_found,
    patch_invalid,
    precondition_failed,
    validation_failed,
)
from shared.adapters.twins.embedded.persistence import Change, MemoryStorage, SqliteStorage, Storage
from shared.filters.adt_route import RouteFilter, compile_route_filter

MAX_BODY_BYTES: Final = 32_768
Twin = dict[str, Any]
_PATCH_OPS: Final = frozenset({"add", "replace", "remove"})
_RFC6902_OPS: Final = frozenset({"move", "copy", "test"})
# Values stored as they are (immutable: no copy) and checked by one check_value call: TwinGraph._patch_properties.
_PRIMITIVE_TYPES: Final = frozenset({str, int, float, bool, type(None)})


_second: tuple[int, str] = (-1, "")  # (whole second, its text): strftime costs microseconds; once a second


def now_text() -> str:
    """UTC now in ADT's form: 7 fractional digits (100 ns ticks) and a Z."""
    global _second
    ticks = time.time_ns() // 100
    seconds, fraction = divmod(ticks, 10_000_000)
    cached = _second  # one tuple read once: consistent even if another thread replaces it meanwhile
    if cached[0] != seconds:
        cached = _second = (seconds, datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{fraction:07d}Z"


# ETags: a random prefix per process and a counter, in a UUID's shape — unique across restarts (new prefix) and
# several times cheaper than uuid4() per write.
_ETAG_HEAD = uuid.uuid4().hex
_ETAG_PREFIX: Final = f'W/"{_ETAG_HEAD[:8]}-{_ETAG_HEAD[8:12]}-{_ETAG_HEAD[12:16]}-{_ETAG_HEAD[16:20]}-'
_etag_counter = itertools.count(1)


def new_etag() -> str:
    return f'{_ETAG_PREFIX}{next(_etag_counter):012x}"'


def _clone(value: Any) -> Any:
    return orjson.loads(orjson.dumps(value)) if isinstance(value, dict | list) else value


def _check_size(body: Any, what: str) -> bytes:
    """The body as JSON bytes, refused over ADT's 32 KB request limit (or when JSON cannot hold it)."""
    try:
        raw = orjson.dumps(body)
    except TypeError as exc:  # not JSON: an in-process caller's integer beyond 64 bits, a set, …
        raise validation_failed(f"the {what} is not representable as JSON: {exc}") from None
    if len(raw) > MAX_BODY_BYTES:
        raise AdtError(413, "PayloadTooLarge", f"{what} of {len(raw)} bytes exceeds {MAX_BODY_BYTES} bytes")
    return raw


def _etag_matches(if_match: str | None, etag: str) -> bool:
    """If-Match: ``*`` or the exact ETag. The SDK may wrap a weak ETag in quotes once more; unwrap it."""
    if if_match is None or if_match == "*":
        return True
    if if_match.startswith('"W/') and if_match.endswith('"'):
        if_match = if_match[1:-1]
    return if_match == etag


# The W3C traceparent of the request being served (the server sets it per request): ADT carries the caller's
# trace context into the notifications a write causes (Learn concepts-event-notifications, "traceparent").
TRACEPARENT: ContextVar[str | None] = ContextVar("adt_traceparent", default=None)


@dataclass(frozen=True, slots=True)
class Notification:
    """One change as ADT reports it to event routes (Learn concepts-event-notifications). ``data`` is the body:
    the twin / relationship for Create and Delete, ``{"modelId", "patch"}`` for Update, the message for telemetry."""

    type: str  # Microsoft.DigitalTwins.Twin.Create … / microsoft.iot.telemetry
    twin_id: str
    data: Any
    model_id: str | None = None
    relationship_id: str | None = None
    component: str | None = None
    message_id: str | None = None
    source_time: str | None = None
    time: str = field(default_factory=now_text)
    traceparent: str | None = field(default_factory=TRACEPARENT.get)

    @property
    def subject(self) -> str:
        if self.relationship_id is not None:
            return f"{self.twin_id}/relationships/{self.relationship_id}"
        if self.component is not None:
            return f"{self.twin_id}/components/{self.component}"
        return self.twin_id

    def attributes(self, host: str = "localhost") -> dict[str, Any]:
        """The CloudEvents attributes a route filter sees (``data`` is ``$body``)."""
        return {"specversion": "1.0", "type": self.type, "source": host, "subject": self.subject,
                "id": self.message_id or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{self.subject}@{self.time}")),
                "time": self.time, "datacontenttype": "application/json",
                **({"dataschema": self.model_id} if self.model_id else {}),
                **({"traceparent": self.traceparent} if self.traceparent else {}), "data": self.data}


@dataclass(frozen=True, slots=True)
class EventRoute:
    id: str
    endpoint_name: str
    filter: str
    compiled: RouteFilter

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "endpointName": self.endpoint_name, "filter": self.filter}


Listener = Callable[[Notification], None]


class TwinGraph:
    """Azure Digital Twins' data plane in one process. Thread-safe."""

    def __init__(self, db: str | Path | None = None, *, endpoints: Iterable[str] | None = None,
                 storage: Storage | None = None) -> None:
        self._lock = threading.RLock()
        self._storage: Storage = storage or (SqliteStorage(db) if db is not None else MemoryStorage())
        self.registry = dtdl.Registry()
        self._models: dict[str, dict[str, Any]] = {}  # id → model data (+ "model": the document)
        self._inline: dict[str, list[str]] = {}  # top-level model id → ids of its inline interfaces
        self._twins: dict[str, Twin] = {}
        self._relationships: dict[tuple[str, str], dict[str, Any]] = {}
        self._outgoing: dict[str, dict[str, None]] = {}  # source → relationship ids (insertion ordered)
        self._incoming: dict[str, dict[tuple[str, str], None]] = {}  # target → (source, id)
        self._routes: dict[str, EventRoute] = {}
        self.endpoints: frozenset[str] | None = frozenset(endpoints) if endpoints is not None else None
        self._listeners: list[Listener] = []
        self._load()

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def _load(self) -> None:
        documents = list(self._storage.load())
        models = [(key, doc) for kind, key, doc in documents if kind == "model"]
        if models:
            order, interfaces = self.registry.parse([doc["model"] for _, doc in models])
            self.registry.register(interfaces)
            for key, doc in models:
                self._models[key] = doc
            self._index_inline(order, interfaces)
        for kind, _key, doc in documents:
            if kind == "twin":
                self._twins[doc["$dtId"]] = doc
            elif kind == "relationship":
                self._link(doc)
            elif kind == "route":
                self._routes[doc["id"]] = EventRoute(doc["id"], doc["endpointName"], doc["filter"],
                                                     compile_route_filter(doc["filter"]))

    def close(self) -> None:
        self._storage.close()

    @property
    def lock(self) -> threading.RLock:
        """The graph's (re-entrant) lock: hold it to make several calls one step for other threads, e.g. an
        in-process store deleting a twin's relationships and then the twin."""
        return self._lock

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` with every change notification, after its write committed, in write order. It runs
        under the graph's lock: keep it quick (queue the notification)."""
        with self._lock:
            self._listeners.append(listener)

    def _commit(self, changes: list[Change], apply: Callable[[], object],
                notification: Notification | None = None) -> None:
        """Persist, then change memory, then tell the listeners. Callers build the notification only when someone
        listens (``self._listeners``): it copies data the in-process hot path does not need."""
        self._storage.write(changes)  # raises → memory untouched, caller gets the error
        apply()
        if notification is not None:
            for listener in self._listeners:
                listener(notification)

    # ---- models ----------------------------------------------------------------------------------------------
    def add_models(self, documents: Any) -> list[dict[str, Any]]:
        with self._lock:
            if not isinstance(documents, list):
                raise bad_request("InvalidArgument", "the request body must be an array of models")
            order, interfaces = self.registry.parse(documents)
            now = now_text()
            by_id = {doc["@id"]: doc for doc in documents if isinstance(doc, dict)}
            created: list[dict[str, Any]] = []
            for model_id in order:
                doc = by_id[model_id]
                data: dict[str, Any] = {"id": model_id}
                for key in ("displayName", "description"):
                    text = dtdl.display_map(doc.get(key))
                    if text is not None:
                        data[key] = text
                data.update({"uploadTime": now, "decommissioned": False, "model": doc})
                created.append(data)

            def apply() -> None:
                self.registry.register(interfaces)
                for data in created:
                    self._models[data["id"]] = data
                self._index_inline(order, interfaces)

            self._commit([("model", d["id"], d) for d in created], apply)
            return [_model_view(d, include=False) for d in created]

    def _index_inline(self, order: list[str], interfaces: dict[str, dtdl.Interface]) -> None:
        inline = [i for i in interfaces if i not in order]
        for top in order:
            self._inline[top] = [i for i in inline if _mentions(interfaces[top].document, i)]

    def get_model(self, model_id: str, include_definition: bool = False) -> dict[str, Any]:
        with self._lock:
            data = self._models.get(model_id)
            if data is None:
                raise not_found("ModelNotFound", f"model {model_id} was not found")
            return _model_view(data, include_definition)

    def list_models(self, dependencies_for: list[str] | None = None,
                    include_definition: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            if not dependencies_for:
                ids = list(self._models)
            else:
                ids = []
                for model_id in dependencies_for:
                    if model_id not in self._models:
                        raise not_found("ModelNotFound", f"model {model_id} was not found")
                    for dependency in [*reversed(self._top_level(self.registry.dependencies(model_id))), model_id]:
                        if dependency not in ids:
                            ids.append(dependency)
            return [_model_view(self._models[i], include_definition) for i in ids]

    def _top_level(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i in self._models]

    def delete_model(self, model_id: str) -> None:
        with self._lock:
            if model_id not in self._models:
                raise not_found("ModelNotFound", f"model {model_id} was not found")
            owned = {model_id, *self._inline.get(model_id, [])}
            users = [m for m in self.registry.referenced_by(model_id) if m not in owned]
            if users:
                raise conflict("ModelReferencesNotDeleted",
                               f"model {model_id} is referenced by {', '.join(users)}; delete those first")

            def apply() -> None:
                del self._models[model_id]
                for interface_id in owned:
                    self.registry.remove(interface_id)
                self._inline.pop(model_id, None)

            self._commit([("model", model_id, None)], apply)

    def update_model(self, model_id: str, patch: Any) -> None:
        """Only decommissioning is possible: ``[{"op": "replace", "path": "/decommissioned", "value": true}]``."""
        with self._lock:
            data = self._models.get(model_id)
            if data is None:
                raise not_found("ModelNotFound", f"model {model_id} was not found")
            ops = patch if isinstance(patch, list) else None
            if not ops or any(not isinstance(op, dict) or op.get("op") != "replace"
                              or op.get("path") != "/decommissioned" or op.get("value") is not True for op in ops):
                raise patch_invalid("only [{'op': 'replace', 'path': '/decommissioned', 'value': true}] is allowed")
            updated = {**data, "decommissioned": True}
            self._commit([("model", model_id, updated)], lambda: self._models.__setitem__(model_id, updated))

    # ---- twins -----------------------------------------------------------------------------------------------
    def get_twin(self, twin_id: str) -> Twin:
        with self._lock:
            twin: Twin = _clone(self._require_twin(twin_id))
            return twin

    def find_twin(self, twin_id: str) -> Twin | None:
        with self._lock:
            twin = self._twins.get(twin_id)
            return _clone(twin) if twin is not None else None

    def _require_twin(self, twin_id: str) -> Twin:
        twin = self._twins.get(twin_id)
        if twin is None:
            raise not_found("DigitalTwinNotFound", f"there is no digital twin instance with id {twin_id}")
        return twin

    def put_twin(self, twin_id: str, body: Any, *, if_none_match: str | None = None) -> Twin:
        with self._lock:
            _check_twin_id(twin_id)
            if if_none_match not in (None, "*"):
                raise bad_request("InvalidArgument", "If-None-Match accepts only '*'")
            existing = self._twins.get(twin_id)
            if existing is not None and if_none_match == "*":
                raise precondition_failed(f"twin {twin_id} already exists (If-None-Match: *)")
            if not isinstance(body, dict):
                raise bad_request("InvalidArgument", "the twin must be a JSON object")
            # One private copy of the whole body (the caller keeps theirs): no per-value copies below.
            twin = self._build_twin(twin_id, orjson.loads(_check_size(body, "twin")), creating=existing is None)
            if existing is None:
                notification = None if not self._listeners else Notification(
                    "Microsoft.DigitalTwins.Twin.Create", twin_id, _clone(twin),
                                            model_id=twin["$metadata"]["$model"])
            else:
                notification = None if not self._listeners else Notification(
                    "Microsoft.DigitalTwins.Twin.Update", twin_id,
                                            {"modelId": twin["$metadata"]["$model"],
                                             "patch": _diff(existing, twin)},
                                            model_id=twin["$metadata"]["$model"])
            self._commit([("twin", twin_id, twin)], lambda: self._twins.__setitem__(twin_id, twin), notification)
            result: Twin = _clone(twin)
            return result

    def _build_twin(self, twin_id: str, body: dict[str, Any], creating: bool) -> Twin:
        metadata = body.get("$metadata")
        if not isinstance(metadata, dict) or not isinstance(metadata.get("$model"), str):
            raise validation_failed("$metadata.$model is required", "/$metadata/$model")
        model_id = metadata["$model"]
        resolved = self._resolved(model_id)
        if creating and self._models.get(model_id, {}).get("decommissioned"):
            raise bad_request("ModelDecommissioned", f"model {model_id} is decommissioned")
        now = now_text()
        twin: Twin = {"$dtId": twin_id, "$etag": new_etag()}
        top_meta: dict[str, Any] = {"$model": model_id, "$lastUpdateTime": now}
        for key, value in body.items():
            if key in ("$dtId", "$etag", "$metadata"):
                continue
            if key.startswith("$"):
                raise validation_failed(f"{key} is not a writable twin field", f"/{key}")
            if key in resolved.components:
                twin[key] = self._build_component(key, resolved.components[key], value, now)
            else:
                twin[key] = value  # already a private copy (put_twin)
                top_meta[key] = {"lastUpdateTime": now}
        for name in resolved.components:
            if name not in twin:
                raise validation_failed(f"component {name!r} is required when the twin is created "
                                        f"(initialise it with {{\"$metadata\": {{}}}})", f"/{name}")
        _merge_source_times(top_meta, metadata, "/$metadata", twin)
        twin["$metadata"] = top_meta
        self._validate_twin(twin, resolved)
        return twin

    def _build_component(self, name: str, model_id: str, value: Any, now: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise validation_failed(f"component {name!r} must be an object", f"/{name}")
        component: dict[str, Any] = {}
        meta: dict[str, Any] = {"$lastUpdateTime": now}
        for key, item in value.items():
            if key == "$metadata":
                continue
            if key.startswith("$"):
                raise validation_failed(f"{name}.{key} is not writable", f"/{name}/{key}")
            component[key] = _clone(item)
            meta[key] = {"lastUpdateTime": now}
        given = value.get("$metadata", {})
        if not isinstance(given, dict):
            raise validation_failed(f"{name}.$metadata must be an object", f"/{name}/$metadata")
        _merge_source_times(meta, given, f"/{name}/$metadata", component)
        component["$metadata"] = meta
        return component

    def _resolved(self, model_id: str) -> dtdl.Resolved:
        resolved = self.registry.resolved(model_id)
        if resolved is None or model_id not in self._models:
            raise validation_failed(f"model {model_id} is not uploaded", "/$metadata/$model")
        return resolved

    def _validate_twin(self, twin: Twin, resolved: dtdl.Resolved, only: Iterable[str] | None = None) -> None:
        """Check the twin against its model; ``only`` limits the value checks to those top-level names."""
        for key in twin if only is None else [name for name in only if name in twin]:
            if key.startswith("$"):
                continue
            value = twin[key]
            dtdl.check_name(key, f"/{key}")
            if key in resolved.components:
                self._validate_component(key, resolved.components[key], value)
                continue
            schema = resolved.properties.get(key)
            if schema is None:
                raise validation_failed(f"{key!r} is not a property of {resolved.id}", f"/{key}")
            dtdl.check_value(schema, value, f"/{key}")
        for name in resolved.components:
            if name not in twin:
                raise validation_failed(f"component {name!r} is required", f"/{name}")
        meta = twin["$metadata"]
        for key in meta if only is None else [name for name in only if name in meta]:
            if not key.startswith("$") and key not in resolved.properties:
                raise validation_failed(f"$metadata names {key!r}, not a property of {resolved.id}",
                                        f"/$metadata/{key}")

    def _validate_component(self, name: str, model_id: str, value: Any) -> None:
        resolved = self.registry.resolved(model_id)
        if resolved is None:
            raise validation_failed(f"component {name!r}: model {model_id} is not uploaded", f"/{name}")
        if not isinstance(value, dict):
            raise validation_failed(f"component {name!r} must be an object", f"/{name}")
        for key, item in value.items():
            if key == "$metadata":
                continue
            dtdl.check_name(key, f"/{name}/{key}")
            schema = resolved.properties.get(key)
            if schema is None:
                raise validation_failed(f"{key!r} is not a property of component {name!r} ({model_id})",
                                        f"/{name}/{key}")
            dtdl.check_value(schema, item, f"/{name}/{key}")
        for key in value.get("$metadata", {}):
            if not key.startswith("$") and key not in resolved.properties:
                raise validation_failed(f"{name}.$metadata names {key!r}, not a property of {model_id}",
                                        f"/{name}/$metadata/{key}")

    def patch_twin(self, twin_id: str, patch: Any, *, if_match: str | None = None,
                   component: str | None = None) -> str:
        """Apply a JSON Patch (to the twin, or with ``component`` to one component); return the new ETag."""
        with self._lock:
            current = self._require_twin(twin_id)
            if not _etag_matches(if_match, current["$etag"]):
                raise precondition_failed(f"twin {twin_id} has changed (If-Match)")
            if component is not None:
                resolved = self._resolved(current["$metadata"]["$model"])
                if component not in resolved.components:
                    raise not_found("ComponentNotFound", f"twin {twin_id} has no component {component!r}")
            now = now_text()
            updated = self._patch_properties(current, patch, now) if component is None else None
            if updated is None:  # not the common shape, or something to refuse: the general path answers
                updated = self._patch_any(current, patch, now, component)
            updated["$etag"] = new_etag()
            updated["$metadata"]["$lastUpdateTime"] = now
            prefix = f"/{component}" if component is not None else ""
            notification = None if not self._listeners else Notification(
                "Microsoft.DigitalTwins.Twin.Update", twin_id,
                {"modelId": updated["$metadata"]["$model"],
                 "patch": [{**op, "path": prefix + op["path"]} for op in patch]},
                model_id=updated["$metadata"]["$model"])
            self._commit([("twin", twin_id, updated)], lambda: self._twins.__setitem__(twin_id, updated),
                         notification)
            return str(updated["$etag"])

    def _patch_properties(self, current: Twin, patch: Any, now: str) -> Twin | None:
        """The common patch, cheaply: add/replace/remove of top-level properties with primitive values (what the
        app's twin writer sends for every telemetry batch). Returns the
        patched copy, or None — having raised nothing and changed nothing — as soon as an op is of another shape
        or would be refused; ``_patch_any`` then answers, so every error (code, message, path) has one source.

        Each check below is what ``_check_patch``, ``_apply_twin_op`` and ``_validate_twin`` would do for such an
        op, folded into one loop: a path that is ``/`` and a model property's name (one dict lookup of the whole
        path) is a one-segment JSON Pointer without escapes, ``$`` or components, and its name passes check_name
        (DTDL names are ASCII letters, digits and _, ≤ 512 characters: dtdl._LIMITS); a primitive value is stored
        as it is (nothing to copy); each value written is checked against its schema, so the last one for each
        name — what the twin keeps — is valid; the model is unchanged, so nothing else needs checking."""
        if type(patch) is not list:
            return None
        model = current["$metadata"]["$model"]
        resolved = self.registry.resolved(model)
        if resolved is None or model not in self._models:
            return None  # the model is gone: the general path answers ValidationFailed
        try:
            # Before the ops, unlike the general path (which checks the ops' shape first): what is not JSON (a
            # lone surrogate, an integer beyond 64 bits) then never reaches check_value, whose errors differ.
            _check_size(patch, "patch")
        except AdtError:
            return None
        # Only "/<property>" paths match: an op on a component or on $metadata is another shape (general path).
        property_paths = resolved.property_paths
        # Copy on write, as _patch_any: the stored twin and its metadata entries are shared, never changed.
        meta = dict(current["$metadata"])
        updated = {**current, "$metadata": meta}
        try:
            for op in patch:
                if type(op) is not dict:
                    return None
                path = op["path"]  # a missing field (path, op, value) is a KeyError: the general path answers
                if type(path) is not str:
                    return None
                found = property_paths.get(path)
                if found is None:
                    return None
                name, schema = found
                kind = op["op"]
                if kind == "remove":
                    if name not in updated:
                        return None
                    del updated[name]
                    meta.pop(name, None)
                    continue
                if kind != "add" and (kind != "replace" or name not in updated):
                    return None
                value = op["value"]
                if type(value) not in _PRIMITIVE_TYPES:
                    return None  # a container: copied and checked field by field on the general path
                dtdl.check_value(schema, value, path)
                updated[name] = value
                # A new entry (the stored one is shared) that keeps a sourceTime (_touch). An entry holding only a
                # lastUpdateTime (the usual one) is replaced by a literal, cheaper than merging (~0.7k
                # instructions an op); anything more is merged.
                entry = meta.get(name)
                if type(entry) is dict and (len(entry) > 1 or "lastUpdateTime" not in entry):
                    meta[name] = {**entry, "lastUpdateTime": now}
                else:
                    meta[name] = {"lastUpdateTime": now}
        except (KeyError, AdtError):  # AdtError: a value check_value refuses (the general path finds it in order)
            return None
        return updated

    def _patch_any(self, current: Twin, patch: Any, now: str, component: str | None) -> Twin:
        """Any patch, op by op (every shape ADT accepts, every refusal): the patched copy, or AdtError."""
        ops = _check_patch(patch)
        _check_size(patch, "patch")
        # Copy on write: the stored twin is never changed in place (a refused patch leaves it as it was, and
        # readers hold it), so the ops change copies of the containers on their paths, not a copy of it all.
        updated = {**current, "$metadata": dict(current["$metadata"])}
        touched: dict[str, None] = {}  # the top-level names the ops reach, in op order (errors name the first)
        model = current["$metadata"]["$model"]
        resolved = self._resolved(model)
        for op in ops:
            if updated["$metadata"]["$model"] != model:  # resolved again only after an op replaced $model
                model = updated["$metadata"]["$model"]
                resolved = self._resolved(model)
            self._apply_twin_op(updated, op, now, component, touched, resolved)
        if updated["$metadata"]["$model"] != model:  # the last op replaced it
            model = updated["$metadata"]["$model"]
            resolved = self._resolved(model)
        # The stored twin was valid: only what the patch touched needs checking, unless the model changed.
        self._validate_twin(updated, resolved, None if model != current["$metadata"]["$model"] else touched)
        return updated

    def _apply_twin_op(self, twin: Twin, op: dict[str, Any], now: str, component: str | None,
                       touched: dict[str, None], resolved: dtdl.Resolved) -> None:
        kind, pointer = op["op"], op["path"]
        parts = _pointer(pointer)
        if component is not None:
            parts = [component, *parts]
        touched[parts[1] if parts[0] == "$metadata" and len(parts) > 1 else parts[0]] = None
        if parts[0] == "$metadata":
            _apply_metadata_op(twin, twin["$metadata"], parts[1:], op, now, pointer)
            return
        if parts[0].startswith("$"):
            raise patch_invalid(f"{pointer}: {parts[0]} is read-only", pointer)
        if parts[0] in resolved.components and len(parts) > 1:
            holder = twin.get(parts[0])
            if not isinstance(holder, dict):
                raise patch_invalid(f"{pointer}: component {parts[0]!r} is not initialised", pointer)
            holder = twin[parts[0]] = dict(holder)  # copy on write (patch_twin)
            meta = holder["$metadata"] = dict(holder.get("$metadata") or {})
            if parts[1] == "$metadata":
                _apply_metadata_op(holder, meta, parts[2:], op, now, pointer, component=True)
            else:
                _apply_value_op(holder, parts[1:], op, pointer)
                _touch(holder, meta, parts[1], kind, len(parts) == 2, now)
            meta["$lastUpdateTime"] = now
            return
        if parts[0] in resolved.components:  # the whole component
            if kind == "remove":
                raise validation_failed(f"component {parts[0]!r} cannot be removed", pointer)
            if kind == "replace" and parts[0] not in twin:
                raise patch_invalid(f"{pointer}: cannot replace an absent component", pointer)
            twin[parts[0]] = self._build_component(parts[0], resolved.components[parts[0]], op["value"], now)
            return
        _apply_value_op(twin, parts, op, pointer)
        _touch(twin, twin["$metadata"], parts[0], kind, len(parts) == 1, now)

    def delete_twin(self, twin_id: str, *, if_match: str | None = None) -> None:
        with self._lock:
            current = self._require_twin(twin_id)
            if not _etag_matches(if_match, current["$etag"]):
                raise precondition_failed(f"twin {twin_id} has changed (If-Match)")
            if self._outgoing.get(twin_id) or self._incoming.get(twin_id):
                raise bad_request("RelationshipsNotDeleted",
                                  f"twin {twin_id} has relationships; delete them before the twin")
            notification = None if not self._listeners else Notification(
                "Microsoft.DigitalTwins.Twin.Delete", twin_id, _clone(current),
                                        model_id=current["$metadata"]["$model"])
            self._commit([("twin", twin_id, None)], lambda: self._twins.pop(twin_id), notification)

    def get_component(self, twin_id: str, component: str) -> dict[str, Any]:
        with self._lock:
            twin = self._require_twin(twin_id)
            resolved = self.registry.resolved(twin["$metadata"]["$model"])
            if resolved is None or component not in resolved.components or component not in twin:
                raise not_found("ComponentNotFound", f"twin {twin_id} has no component {component!r}")
            component_value: dict[str, Any] = _clone(twin[component])
            return component_value

    def twins(self) -> Iterator[Twin]:
        """Every twin (copies), ordered by id: the in-process store's listing and the query engine's scan."""
        with self._lock:
            snapshot = [self._twins[k] for k in sorted(self._twins)]
        return (_clone(t) for t in snapshot)

    # ---- relationships ---------------------------------------------------------------------------------------
    def _link(self, relationship: dict[str, Any]) -> None:
        source, rel_id, target = (relationship["$sourceId"], relationship["$relationshipId"],
                                  relationship["$targetId"])
        previous = self._relationships.get((source, rel_id))
        if previous is not None:
            self._incoming.get(previous["$targetId"], {}).pop((source, rel_id), None)
        self._relationships[(source, rel_id)] = relationship
        self._outgoing.setdefault(source, {})[rel_id] = None
        self._incoming.setdefault(target, {})[(source, rel_id)] = None

    def _unlink(self, source: str, rel_id: str) -> None:
        relationship = self._relationships.pop((source, rel_id))
        self._outgoing.get(source, {}).pop(rel_id, None)
        self._incoming.get(relationship["$targetId"], {}).pop((source, rel_id), None)

    def _require_relationship(self, source: str, rel_id: str) -> dict[str, Any]:
        self._require_twin(source)
        relationship = self._relationships.get((source, rel_id))
        if relationship is None:
            raise not_found("RelationshipNotFound", f"twin {source} has no relationship {rel_id}")
        return relationship

    def get_relationship(self, source: str, rel_id: str) -> dict[str, Any]:
        with self._lock:
            relationship: dict[str, Any] = _clone(self._require_relationship(source, rel_id))
            return relationship

    def put_relationship(self, source: str, rel_id: str, body: Any, *,
                         if_none_match: str | None = None) -> dict[str, Any]:
        with self._lock:
            _check_twin_id(rel_id, what="relationship id")
            if if_none_match not in (None, "*"):
                raise bad_request("InvalidArgument", "If-None-Match accepts only '*'")
            source_twin = self._require_twin(source)
            if not isinstance(body, dict):
                raise bad_request("InvalidArgument", "the relationship must be a JSON object")
            _check_size(body, "relationship")
            target = body.get("$targetId")
            name = body.get("$relationshipName")
            if not isinstance(target, str) or not target:
                raise bad_request("InvalidArgument", "$targetId is required")
            if not isinstance(name, str) or not name:
                raise bad_request("InvalidArgument", "$relationshipName is required")
            target_twin = self._twins.get(target)
            if target_twin is None:
                raise not_found("TargetTwinNotFound", f"the target twin {target} of the relationship does not exist")
            if target == source:
                raise bad_request("OperationNotAllowed", "a relationship cannot connect a twin to itself")
            existing = self._relationships.get((source, rel_id))
            if existing is not None and if_none_match == "*":
                raise precondition_failed(f"relationship {rel_id} already exists (If-None-Match: *)")
            properties = {k: _clone(v) for k, v in body.items() if not k.startswith("$")}
            for key in body:
                if key.startswith("$") and key not in ("$targetId", "$relationshipName", "$relationshipId",
                                                       "$sourceId", "$etag"):
                    raise validation_failed(f"{key} is not a writable relationship field", f"/{key}")
            definition = self._relationship_definition(source_twin, name)
            self._check_relationship(source, rel_id, definition, target_twin, properties)
            relationship: dict[str, Any] = {"$relationshipId": rel_id, "$sourceId": source, "$targetId": target,
                                            "$relationshipName": name, **properties, "$etag": new_etag()}
            notification = None if not self._listeners else Notification(
                "Microsoft.DigitalTwins.Relationship.Create", source, _clone(relationship),
                                        model_id=source_twin["$metadata"]["$model"], relationship_id=rel_id)
            self._commit([("relationship", _rel_key(source, rel_id), relationship)],
                         lambda: self._link(relationship), notification)
            stored: dict[str, Any] = _clone(relationship)
            return stored

    def _relationship_definition(self, source_twin: Twin, name: str) -> dtdl.Relationship:
        resolved = self._resolved(source_twin["$metadata"]["$model"])
        definition = resolved.relationships.get(name)
        if definition is None:
            raise validation_failed(f"{resolved.id} declares no relationship {name!r}", "/$relationshipName")
        return definition

    def _check_relationship(self, source: str, rel_id: str, definition: dtdl.Relationship, target_twin: Twin,
                            properties: dict[str, Any]) -> None:
        if definition.target is not None and not self.registry.is_of_model(target_twin["$metadata"]["$model"],
                                                                           definition.target):
            raise bad_request("InvalidRelationship",
                              f"relationship {definition.name!r} must target a {definition.target} twin, "
                              f"not {target_twin['$metadata']['$model']}", "/$targetId")
        if definition.max_multiplicity is not None:
            others = sum(1 for other in self._outgoing.get(source, {})
                         if other != rel_id
                         and self._relationships[(source, other)]["$relationshipName"] == definition.name)
            if others >= definition.max_multiplicity:
                raise bad_request("InvalidRelationship",
                                  f"{source} already has {others} {definition.name!r} relationships "
                                  f"(maxMultiplicity {definition.max_multiplicity})")
        for key, value in properties.items():
            dtdl.check_name(key, f"/{key}")
            schema = definition.properties.get(key)
            if schema is None:
                raise validation_failed(f"{key!r} is not a property of relationship {definition.name!r}", f"/{key}")
            dtdl.check_value(schema, value, f"/{key}")

    def patch_relationship(self, source: str, rel_id: str, patch: Any, *, if_match: str | None = None) -> str:
        with self._lock:
            current = self._require_relationship(source, rel_id)
            if not _etag_matches(if_match, current["$etag"]):
                raise precondition_failed(f"relationship {rel_id} has changed (If-Match)")
            ops = _check_patch(patch)
            _check_size(patch, "patch")
            updated = dict(current)  # copy on write, as patch_twin
            for op in ops:
                parts = _pointer(op["path"])
                if parts[0].startswith("$"):
                    raise patch_invalid(f"{op['path']}: {parts[0]} is read-only", op["path"])
                _apply_value_op(updated, parts, op, op["path"])
            source_twin = self._require_twin(source)
            definition = self._relationship_definition(source_twin, current["$relationshipName"])
            target_twin = self._require_twin(current["$targetId"])
            self._check_relationship(source, rel_id, definition, target_twin,
                                     {k: v for k, v in updated.items() if not k.startswith("$")})
            updated["$etag"] = new_etag()
            notification = None if not self._listeners else Notification(
                "Microsoft.DigitalTwins.Relationship.Update", source,
                                        {"modelId": source_twin["$metadata"]["$model"], "patch": ops},
                                        model_id=source_twin["$metadata"]["$model"], relationship_id=rel_id)
            self._commit([("relationship", _rel_key(source, rel_id), updated)], lambda: self._link(updated),
                         notification)
            return str(updated["$etag"])

    def delete_relationship(self, source: str, rel_id: str, *, if_match: str | None = None) -> None:
        with self._lock:
            current = self._require_relationship(source, rel_id)
            if not _etag_matches(if_match, current["$etag"]):
                raise precondition_failed(f"relationship {rel_id} has changed (If-Match)")
            model = self._twins[source]["$metadata"]["$model"]
            notification = None if not self._listeners else Notification(
                "Microsoft.DigitalTwins.Relationship.Delete", source, _clone(current),
                                        model_id=model, relationship_id=rel_id)
            self._commit([("relationship", _rel_key(source, rel_id), None)], lambda: self._unlink(source, rel_id),
                         notification)

    def list_relationships(self, source: str, relationship_name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            self._require_twin(source)
            found = [self._relationships[(source, r)] for r in self._outgoing.get(source, {})]
            if relationship_name is not None:
                found = [r for r in found if r["$relationshipName"] == relationship_name]
            return [_clone(r) for r in found]

    def list_incoming_relationships(self, target: str) -> list[dict[str, Any]]:
        with self._lock:
            self._require_twin(target)
            return [{"$relationshipId": rel_id, "$sourceId": source,
                     "$relationshipName": self._relationships[(source, rel_id)]["$relationshipName"],
                     "$relationshipLink": f"/digitaltwins/{quote(source, safe='')}/relationships/"
                                          f"{quote(rel_id, safe='')}"}
                    for source, rel_id in self._incoming.get(target, {})]

    def relationships(self) -> Iterator[dict[str, Any]]:
        with self._lock:
            snapshot = list(self._relationships.values())
        return (_clone(r) for r in snapshot)

    # ---- telemetry -------------------------------------------------------------------------------------------
    def send_telemetry(self, twin_id: str, message: Any, message_id: str, *, source_time: str | None = None,
                       component: str | None = None) -> None:
        with self._lock:
            twin = self._require_twin(twin_id)
            if not message_id:
                raise bad_request("InvalidArgument", "the Message-Id header is required")
            if source_time is not None and not dtdl.is_date_time(source_time):
                raise bad_request("InvalidArgument", "Telemetry-Source-Time must be an RFC 3339 date-time")
            model = twin["$metadata"]["$model"]
            if component is not None:
                resolved = self.registry.resolved(model)
                if resolved is None or component not in resolved.components:
                    raise not_found("ComponentNotFound", f"twin {twin_id} has no component {component!r}")
                model = resolved.components[component]
            _check_size(message, "telemetry")
            notification = None if not self._listeners else Notification(
                "microsoft.iot.telemetry", twin_id, _clone(message), model_id=model,
                                        component=component, message_id=message_id, source_time=source_time)
            self._commit([], lambda: None, notification)

    # ---- event routes ----------------------------------------------------------------------------------------
    def put_event_route(self, route_id: str, body: Any) -> None:
        with self._lock:
            if not isinstance(route_id, str) or not route_id or len(route_id) > 50 or not all(
                    c.isalnum() or c in "-_" for c in route_id):
                raise bad_request("EventRouteIdInvalid", f"event route id {route_id!r} is invalid")
            if not isinstance(body, dict):
                raise bad_request("InvalidArgument", "the event route must be a JSON object")
            endpoint, text = body.get("endpointName"), body.get("filter")
            if not isinstance(endpoint, str) or not endpoint or (
                    self.endpoints is not None and endpoint not in self.endpoints):
                raise bad_request("EventRouteEndpointInvalid",
                                  f"endpoint {endpoint!r} does not exist or is not active")
            if not isinstance(text, str) or not text.strip():
                raise bad_request("EventRouteFilterInvalid", "filter is required ('true' routes everything)")
            try:
                compiled = compile_route_filter(text)
            except ValueError as exc:
                raise bad_request("EventRouteFilterInvalid", f"the event route filter is invalid: {exc}") from None
            route = EventRoute(route_id, endpoint, text, compiled)
            self._commit([("route", route_id, route.to_json())], lambda: self._routes.__setitem__(route_id, route))

    def get_event_route(self, route_id: str) -> dict[str, Any]:
        with self._lock:
            route = self._routes.get(route_id)
            if route is None:
                raise not_found("EventRouteNotFound", f"event route {route_id} was not found")
            return route.to_json()

    def list_event_routes(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.to_json() for r in self._routes.values()]

    def delete_event_route(self, route_id: str) -> None:
        with self._lock:
            if route_id not in self._routes:
                raise not_found("EventRouteNotFound", f"event route {route_id} was not found")
            self._commit([("route", route_id, None)], lambda: self._routes.pop(route_id))

    def event_routes(self) -> list[EventRoute]:
        """The event routes, each with its filter compiled once when it was put."""
        with self._lock:
            return list(self._routes.values())

    def routes_for(self, notification: Notification, host: str = "localhost") -> list[EventRoute]:
        """The routes whose filter matches ``notification`` (what an event route delivery would send)."""
        attributes = notification.attributes(host)
        return [r for r in self.event_routes() if r.compiled.matches(attributes)]

    # ---- query -----------------------------------------------------------------------------------------------
    def query(self, text: str) -> list[Any]:
        """Every result row of an ADT query (paging is the caller's, e.g. ``Pages``).

        Runs under the lock on the live maps (no snapshot copy: a pinned query touches only its twins). Rows refer
        to stored documents, which are replaced, never changed in place; the caller gets copies."""
        from shared.adapters.twins.embedded.query import run_query

        with self._lock:
            rows = run_query(text, self._twins, self._relationships.values(), self._outgoing, self._relationships,
                             self.registry)
        result: list[Any] = _clone(rows)
        return result


# ---- helpers -----------------------------------------------------------------------------------------------------
def _rel_key(source: str, rel_id: str) -> str:
    return orjson.dumps([source, rel_id]).decode()


def _mentions(document: Any, model_id: str) -> bool:
    return model_id.encode() in orjson.dumps(document)


def _model_view(data: dict[str, Any], include: bool) -> dict[str, Any]:
    view = {k: v for k, v in data.items() if k != "model"}
    if include:
        view["model"] = _clone(data["model"])
    return view


def _check_twin_id(twin_id: str, what: str = "digital twin id") -> None:
    if not twin_id or len(twin_id) > 1024 or any(ord(c) < 32 for c in twin_id):
        raise bad_request("InvalidArgument", f"the {what} {twin_id!r} is invalid")


def _check_patch(patch: Any) -> list[dict[str, Any]]:
    if not isinstance(patch, list):
        raise patch_invalid("the patch must be a JSON array of operations")
    for index, op in enumerate(patch):
        if not isinstance(op, dict):
            raise patch_invalid(f"operation {index} is not an object")
        kind, path = op.get("op"), op.get("path")
        if not isinstance(kind, str):
            raise patch_invalid(f"operation {index}: op must be a string")
        if kind in _RFC6902_OPS:
            raise patch_invalid(f"operation {index}: '{kind}' is not supported (add, replace, remove only)")
        if kind not in _PATCH_OPS:
            raise patch_invalid(f"operation {index}: unknown op {kind!r}")
        if not isinstance(path, str) or not path.startswith("/") or path == "/":
            raise patch_invalid(f"operation {index}: path {path!r} is not a JSON Pointer to a value")
        if kind != "remove" and "value" not in op:
            raise patch_invalid(f"operation {index}: '{kind}' needs a value", path)
    return patch


def _pointer(path: str) -> list[str]:
    parts = path[1:].split("/")
    if "~" not in path:  # the common case: no escaped '/' or '~' (RFC 6901)
        return parts
    return [p.replace("~1", "/").replace("~0", "~") for p in parts]


def _apply_value_op(root: dict[str, Any], parts: list[str], op: dict[str, Any], pointer: str) -> None:
    """RFC 6902 add/replace/remove on plain JSON (objects and arrays). ``root`` is the caller's own copy; every
    container on the path below it is copied before it changes (copy on write: the stored twin shares the rest)."""
    parent: Any = root
    for part in parts[:-1]:
        key: str | int
        if isinstance(parent, dict) and part in parent:
            key = part
        elif isinstance(parent, list) and part.isdigit() and int(part) < len(parent):
            key = int(part)
        else:
            raise patch_invalid(f"{pointer}: {part!r} does not exist (add the parent object first)", pointer)
        child = parent[key]
        if isinstance(child, dict | list):
            child = parent[key] = child.copy()
        parent = child
    leaf, kind = parts[-1], op["op"]
    if isinstance(parent, dict):
        if kind != "add" and leaf not in parent:
            raise patch_invalid(f"{pointer}: cannot {kind} a value that is not set (use add)", pointer)
        if kind == "remove":
            del parent[leaf]
        else:
            parent[leaf] = _clone(op["value"])
    elif isinstance(parent, list):
        if kind == "add" and leaf == "-":
            parent.append(_clone(op["value"]))
            return
        if not leaf.isdigit():
            raise patch_invalid(f"{pointer}: {leaf!r} is not an array index", pointer)
        index = int(leaf)
        limit = len(parent) if kind == "add" else len(parent) - 1
        if index > limit:
            raise patch_invalid(f"{pointer}: index {index} is out of range", pointer)
        if kind == "add":
            parent.insert(index, _clone(op["value"]))
        elif kind == "replace":
            parent[index] = _clone(op["value"])
        else:
            del parent[index]
    else:
        raise patch_invalid(f"{pointer}: the parent is not an object or array", pointer)


def _touch(holder: dict[str, Any], meta: dict[str, Any], name: str, kind: str, whole: bool, now: str) -> None:
    """Metadata after a value op on ``name``: a removed property loses its entry; a written one gets a new
    lastUpdateTime and keeps its sourceTime."""
    if kind == "remove" and whole:
        meta.pop(name, None)
        return
    if name in holder:
        entry = meta.get(name)
        meta[name] = {**(entry if isinstance(entry, dict) else {}), "lastUpdateTime": now}


def _apply_metadata_op(holder: dict[str, Any], meta: dict[str, Any], parts: list[str], op: dict[str, Any],
                       now: str, pointer: str, component: bool = False) -> None:
    kind = op["op"]
    if not component and parts == ["$model"]:
        if kind == "remove" or not isinstance(op.get("value"), str):
            raise patch_invalid(f"{pointer}: $model can be replaced with a model id, not removed", pointer)
        meta["$model"] = op["value"]
        return
    if len(parts) != 2 or parts[1] != "sourceTime" or parts[0].startswith("$"):
        raise patch_invalid(f"{pointer}: only $metadata/<property>/sourceTime is writable", pointer)
    name = parts[0]
    entry = dict(meta.get(name) or {})
    if kind == "remove":
        if "sourceTime" not in entry:
            raise patch_invalid(f"{pointer}: no sourceTime to remove", pointer)
        del entry["sourceTime"]
    else:
        # ADT's own example replaces the sourceTime of a property written in the same patch
        # (PatchTwinAdvancedExample.json): replace creates the entry, as add would, when the property is set.
        if kind == "replace" and name not in meta and name not in holder:
            raise patch_invalid(f"{pointer}: property {name!r} is not set", pointer)
        value = op["value"]
        if not isinstance(value, str) or not dtdl.is_date_time(value):
            raise validation_failed(f"{pointer}: sourceTime must be an RFC 3339 date-time", pointer)
        entry.setdefault("lastUpdateTime", now)
        entry["sourceTime"] = value
    meta[name] = entry


def _merge_source_times(meta: dict[str, Any], given: dict[str, Any], where: str, values: dict[str, Any]) -> None:
    """Copy the writable ``sourceTime`` of each ``$metadata/<prop>`` entry of a PUT body; ADT's read-only fields
    (``lastUpdateTime``, ``$lastUpdateTime``) may come back from a GET and are ignored."""
    for name, entry in given.items():
        if name.startswith("$"):
            continue
        path = f"{where}/{name}"
        if not isinstance(entry, dict):
            raise validation_failed(f"{path} must be an object", path)
        for key in entry:
            if key not in ("sourceTime", "lastUpdateTime"):
                raise validation_failed(f"{path}/{key} is not a metadata field", f"{path}/{key}")
        if "sourceTime" in entry:
            source_time = entry["sourceTime"]
            if not isinstance(source_time, str) or not dtdl.is_date_time(source_time):
                raise validation_failed(f"{path}/sourceTime must be an RFC 3339 date-time", f"{path}/sourceTime")
            target = meta.get(name)
            if not isinstance(target, dict):
                if name not in values:
                    continue  # sourceTime of a property the body does not set: nothing to time
                target = meta[name] = {"lastUpdateTime": meta.get("$lastUpdateTime")}
            target["sourceTime"] = source_time


def _diff(before: Twin, after: Twin) -> list[dict[str, Any]]:
    """A JSON Patch from one twin version to the next (top-level values and the model), for Twin.Update."""
    ops: list[dict[str, Any]] = []
    if before["$metadata"]["$model"] != after["$metadata"]["$model"]:
        ops.append({"op": "replace", "path": "/$metadata/$model", "value": after["$metadata"]["$model"]})
    for key, value in after.items():
        if key.startswith("$"):
            continue
        clean = {k: v for k, v in value.items() if k != "$metadata"} if isinstance(value, dict) else value
        old = before.get(key)
        old_clean = {k: v for k, v in old.items() if k != "$metadata"} if isinstance(old, dict) else old
        if key not in before:
            ops.append({"op": "add", "path": f"/{key}", "value": clean})
        elif old_clean != clean:
            ops.append({"op": "replace", "path": f"/{key}", "value": clean})
    ops.extend({"op": "remove", "path": f"/{key}"} for key in before
               if not key.startswith("$") and key not in after)
    return ops
