"""The ``TwinStore`` port (shared/ports.py) over the engine: the app's embedded twin store (shared/wiring.py builds
it when no ADT instance is configured), held to the same contract suite as the ADT adapter.

ADT answers map to the port's exceptions exactly as the ADT adapter should map them:

* 412 PreconditionFailed → ``TwinConflict``;
* 404 DigitalTwinNotFound / RelationshipNotFound → ``TwinMissing``;
* 404 **TargetTwinNotFound** → ``TwinRejected`` (the relationship can never be written as it is: its target does
  not exist — not "the twin vanished");
* every other 4xx (400 ValidationFailed, JsonPatchInvalid, RelationshipsNotDeleted, 413 …) → ``TwinRejected``;
* 5xx (the graph file refused a commit: locked, disk full) → ``TransientError`` — nothing changed, the broker
  redelivers, and the redelivery writes again (the graph commits before it changes memory or answers).

Over a file (``TwinGraph(path)``) every acknowledged write is on disk; a file that cannot be opened at all raises
``TwinGraphFileError`` (persistence.py) with one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from shared.adapters.twins.embedded.errors import AdtError
from shared.adapters.twins.embedded.graph import TwinGraph
from shared.errors import Code, TransientError, TwinConflict, TwinMissing, TwinRejected

T = TypeVar("T")


def to_port_error(error: AdtError) -> Exception:
    if error.status >= 500:
        return TransientError(Code.ADT_UNAVAILABLE, f"{error.code}: {error.message}")
    if error.status == 412:
        return TwinConflict(error.message)
    if error.status == 404 and error.code != "TargetTwinNotFound":
        return TwinMissing(f"{error.code}: {error.message}")
    return TwinRejected(error.code, error.message)


class EmbeddedTwinStore:
    in_process = True  # no I/O: see shared.ports.in_process

    def __init__(self, graph: TwinGraph) -> None:
        self.graph = graph
        self.calls: dict[str, int] = {"get": 0, "create": 0, "patch": 0, "delete": 0}

    @staticmethod
    def _call(action: Callable[[], T]) -> T:
        try:
            return action()
        except AdtError as error:
            raise to_port_error(error) from None

    def get_twin(self, twin_id: str) -> dict[str, Any] | None:
        self.calls["get"] += 1
        return self.graph.find_twin(twin_id)

    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str:
        self.calls["create"] += 1
        return str(self._call(lambda: self.graph.put_twin(twin_id, document, if_none_match="*"))["$etag"])

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        self.calls["patch"] += 1
        return self._call(lambda: self.graph.patch_twin(twin_id, patch, if_match=etag))

    def delete_twin(self, twin_id: str, etag: str | None = None) -> None:
        """Relationships (both directions), then the twin, as one step; a missing twin is already deleted. The
        ETag is checked first, so a twin re-created meanwhile keeps its relationships."""
        self.calls["delete"] += 1
        with self.graph.lock:
            current = self.graph.find_twin(twin_id)
            if current is None:
                return
            if etag not in (None, "*") and etag != current["$etag"]:
                raise TwinConflict(f"PreconditionFailed: {twin_id} has changed (If-Match)")
            pairs = [(twin_id, r["$relationshipId"]) for r in self.graph.list_relationships(twin_id)]
            pairs += [(r["$sourceId"], r["$relationshipId"]) for r in self.graph.list_incoming_relationships(twin_id)]
            try:
                for source, rel_id in pairs:
                    self.graph.delete_relationship(source, rel_id)
                self.graph.delete_twin(twin_id, if_match=etag)
            except AdtError as error:
                raise to_port_error(error) from None

    def list_twins(self) -> Iterator[dict[str, Any]]:
        return self.graph.twins()

    def close(self) -> None:
        self.graph.close()

    def list_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        return self._call(lambda: self.graph.list_relationships(twin_id))

    def list_incoming_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        """As the ADT adapter returns them: the incoming-relationship fields plus ``$targetId``."""
        incoming = self._call(lambda: self.graph.list_incoming_relationships(twin_id))
        return [{"$relationshipId": r["$relationshipId"], "$sourceId": r["$sourceId"],
                 "$relationshipName": r["$relationshipName"], "$targetId": twin_id} for r in incoming]

    def upsert_relationship(self, twin_id: str, relationship_id: str, relationship: dict[str, Any]) -> str:
        return str(self._call(lambda: self.graph.put_relationship(twin_id, relationship_id, relationship))["$etag"])

    def delete_relationship(self, twin_id: str, relationship_id: str) -> None:
        self._call(lambda: self.graph.delete_relationship(twin_id, relationship_id))
