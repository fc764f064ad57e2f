"""The app's DTDL models parsed by the engine's own registry (dtdl.py), answering the mapper's ``ModelTypes`` port
(shared/ingest/model_types.py): the mapper sees each model exactly as the engine (and ADT) validates twins of it.

``ModelCatalog.load_dir`` reads a models/ directory (files holding one interface or an array) and refuses what ADT's
model upload refuses (DTDLParserError: a missing ``@context``, an unknown base, …), as one ``AdtError``.
``documents`` keeps the parsed files, so the embedded twin graph can be given the same models (``upload_to``).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from shared.adapters.twins.embedded.dtdl import Registry, Resolved, Schema, check_value, iter_documents
from shared.adapters.twins.embedded.errors import AdtError
from shared.adapters.twins.embedded.graph import TwinGraph
from shared.ingest.model_types import PropertyType

log = logging.getLogger("twinbridge.models")


class ModelCatalog:
    """Models by id over a ``Registry``: its own (``load_dir``, ``add``) or a twin graph's (``of_graph``)."""

    def __init__(self, registry: Registry | None = None, lock: threading.RLock | None = None) -> None:
        self.registry = registry if registry is not None else Registry()
        self._lock = lock if lock is not None else threading.RLock()
        self.documents: list[dict[str, Any]] = []
        # model id -> (the Resolved it was built from, its declared properties, the registry generation it was
        # checked at): rebuilt when the model changes
        self._declared: dict[str, tuple[Resolved, dict[str, PropertyType], int]] = {}

    @classmethod
    def load_dir(cls, directory: str | Path) -> ModelCatalog:
        catalog = cls()
        files = sorted(Path(directory).glob("*.json"))
        documents = iter_documents(orjson.loads(f.read_bytes()) for f in files)
        if documents:
            catalog.add(documents)
        return catalog

    @classmethod
    def of_graph(cls, graph: TwinGraph) -> ModelCatalog:
        """The models the graph holds, read live (a model uploaded to the graph later is seen)."""
        return cls(graph.registry, graph.lock)

    def add(self, documents: Iterable[Any]) -> None:
        """Parse and register a batch as ADT's model upload does (all or nothing; AdtError when refused)."""
        batch = iter_documents(documents if isinstance(documents, list) else [documents])
        with self._lock:
            _order, interfaces = self.registry.parse(batch)
            self.registry.register(interfaces)
            self.documents.extend(d for d in batch if isinstance(d, dict))

    def upload_to(self, graph: TwinGraph) -> None:
        """Give ``graph`` the catalog's models it does not hold yet (a graph file keeps what earlier runs uploaded;
        a changed definition there is reported, not replaced: twins may depend on it)."""
        pending = [d for d in self.documents if not graph.registry.knows(str(d.get("@id")))]
        if pending:
            graph.add_models(pending)
        for document in self.documents:
            if document in pending:
                continue
            stored = graph.get_model(str(document["@id"]), include_definition=True).get("model")
            if stored != document:
                log.warning("the twin graph file holds another definition of %s than the models directory; the "
                            "file's is used (delete the file to start over with the new one)", document["@id"])

    # ---- ModelTypes -----------------------------------------------------------------------------------------------
    def declared(self, model_id: str) -> Mapping[str, PropertyType] | None:
        cached = self._declared.get(model_id)
        if cached is not None and cached[2] == self.registry.generation:
            return cached[1]  # the per-event path: no model changed since (no lock, no resolving)
        with self._lock:  # the registry is not thread-safe by itself; a twin graph's lock guards it there
            generation = self.registry.generation
            resolved = self.registry.resolved(model_id)
        if resolved is None:
            return None
        if cached is not None and cached[0] is resolved:
            self._declared[model_id] = (resolved, cached[1], generation)
            return cached[1]
        props: dict[str, PropertyType] = {name: _property_type(schema) for name, schema in resolved.properties.items()}
        props.update({name: PropertyType("Component", component_model=component)
                      for name, component in resolved.components.items()})
        self._declared[model_id] = (resolved, props, generation)
        return props


def _number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)  # NaN and infinities are not JSON: no twin can hold them
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _string(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _boolean(value: Any) -> bool:
    return value is None or isinstance(value, bool)


# The commonest schemas get a direct test (called per field of every event), with the exact types it accepts
# whatever the value (a float's finiteness is the caller's own test); the others ask check_value.
_FAST: dict[str, tuple[Callable[[Any], bool], frozenset[type]]] = {
    "double": (_number, frozenset({int, float})), "float": (_number, frozenset({int, float})),
    "string": (_string, frozenset({str})), "boolean": (_boolean, frozenset({bool})),
}


def _property_type(schema: Schema) -> PropertyType:
    fast = _FAST.get(schema.kind)
    if fast is not None:
        return PropertyType(schema.kind, fast[0], sure_types=fast[1])
    return PropertyType(schema.kind, _checker(schema))


def _checker(schema: Schema) -> Callable[[Any], bool]:
    def accepts(value: Any) -> bool:
        try:
            check_value(schema, value, "")
        except AdtError:
            return False
        return True

    return accepts
