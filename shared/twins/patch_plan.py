"""Plan: what to do to one twin so that it shows its shadow — nothing, create, patch or delete.

The twin is a projection of the shadow. The patch is the difference between that projection and the twin as read
just now, so a batch becomes one minimal patch per twin (coalesced), a no-op is skipped, a property never set gets
``add`` (ADT rejects ``replace`` of a missing property), a missing parent object is added whole, and a redelivered
batch finds nothing to do. Patches carry absolute values only, so applying one twice is harmless.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from shared.settings.app_config import MissingTwinPolicy
from shared.twins.freshness import CONNECTION, LIVE, Shadow

Path = tuple[str, ...]
PatchOp = dict[str, Any]


@dataclass(slots=True)
class TwinAction:
    kind: Literal["none", "create", "patch", "delete"]
    patches: list[list[PatchOp]] = field(default_factory=list)  # several only when one would exceed 32 KB
    document: dict[str, Any] = field(default_factory=dict)  # the twin to create
    partial: bool = False  # a create too big for one request: created bare, the properties follow as patches


def wants_twin(shadow: Shadow, twin_exists: bool, policy: MissingTwinPolicy) -> bool:
    """Should the twin exist? Lifecycle decides when known; otherwise device data under the ``create`` policy."""
    if shadow.lifecycle == LIVE:
        return True
    if shadow.lifecycle is None and twin_exists:
        return True
    return policy is MissingTwinPolicy.CREATE and shadow.has_device_data()


def dropped_paths(shadow: Shadow, connection_path: Path | None) -> list[Path]:
    """Twin paths this app once wrote whose data is gone from the shadow (a deletion dropped it)."""
    gone = shadow.owned.difference(shadow.marks)
    out = [connection_path if name == CONNECTION else tuple(name.split("/")) for name in sorted(gone)]
    return [path for path in out if path is not None]


def desired_properties(shadow: Shadow, connection_path: Path | None,
                       connection_values: dict[bool, str]) -> dict[Path, Any]:
    out: dict[Path, Any] = {}
    for name, mark in shadow.device_fields().items():
        if name == CONNECTION:
            if connection_path is not None:
                out[connection_path] = connection_values[bool(mark.value)]
        else:
            out[_path_of(name)] = mark.value
    return out


_PATHS: dict[str, Path] = {}  # field name -> property path: a twin's few field names recur in every batch


def _path_of(name: str) -> Path:
    path = _PATHS.get(name)
    if path is None:
        path = tuple(name.split("/"))
        if len(_PATHS) < 65_536:
            _PATHS[name] = path
    return path


def plan(shadow: Shadow, twin: dict[str, Any] | None, wanted: bool, properties: dict[Path, Any],
         max_patch_bytes: int, dropped: list[Path] | None = None) -> TwinAction:
    if not wanted:
        return TwinAction("delete") if twin is not None else TwinAction("none")
    if twin is None:
        document: dict[str, Any] = {"$metadata": {"$model": shadow.model_id}}
        _merge_tree(document, properties)
        if not fits_on_wire(document, max_patch_bytes):
            return TwinAction("create", document={"$metadata": {"$model": shadow.model_id}}, partial=True)
        return TwinAction("create", document=document)
    ops = diff(twin, properties) + removals(twin, dropped or [])
    if not ops:
        return TwinAction("none")
    return TwinAction("patch", patches=split_patch(ops, max_patch_bytes))


def diff(twin: dict[str, Any], properties: dict[Path, Any]) -> list[PatchOp]:
    """The JSON Patch that makes ``twin`` show ``properties`` (other properties are left alone)."""
    tree: dict[str, Any] = {}
    _merge_tree(tree, properties)
    ops: list[PatchOp] = []
    _diff_level(twin, tree, "", ops)
    return ops


def _merge_tree(target: dict[str, Any], properties: dict[Path, Any]) -> None:
    for path, value in properties.items():
        node = target
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[path[-1]] = value


def _diff_level(current: dict[str, Any], desired: dict[str, Any], prefix: str, ops: list[PatchOp]) -> None:
    for name, want in desired.items():
        pointer = prefix + "/" + _escape(name)
        if name not in current:
            ops.append({"op": "add", "path": pointer, "value": want})
            continue
        have = current[name]
        if isinstance(want, dict) and isinstance(have, dict):
            _diff_level(have, want, pointer, ops)
        elif not same_value(have, want):
            ops.append({"op": "replace", "path": pointer, "value": want})


def removals(twin: dict[str, Any], paths: list[Path]) -> list[PatchOp]:
    ops: list[PatchOp] = []
    for path in paths:
        node: Any = twin
        for part in path:
            node = node.get(part, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT:
            ops.append({"op": "remove", "path": "".join(f"/{_escape(p)}" for p in path)})
    return ops


_ABSENT: Any = object()


def same_value(a: Any, b: Any) -> bool:
    """JSON equality: 20 == 20.0, but True is not 1."""
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _escape(name: str) -> str:
    if "~" not in name and "/" not in name:
        return name  # DTDL names never hold either
    return name.replace("~", "~0").replace("/", "~1")


def wire_size(body: Any) -> int:
    """Bytes on the wire as azure-core sends a JSON body (json.dumps: spaces after separators, \\u escapes)."""
    return len(json.dumps(body))


def fits_on_wire(body: Any, max_bytes: int) -> bool:
    """``wire_size(body) <= max_bytes``, without json.dumps in the common case.

    orjson's compact UTF-8 is never less than a third of azure-core's form: per output byte, json.dumps adds at most
    a space after a separator (2x), writes a 2- or 4-byte UTF-8 character as one or two \\uXXXX escapes (3x) and a
    float exponent with a sign (5/4). So three times orjson's length bounds the SDK's, ten times cheaper to get.
    """
    try:
        if 3 * len(orjson.dumps(body)) <= max_bytes:
            return True
    except (TypeError, orjson.JSONEncodeError):
        pass  # e.g. an integer beyond 64 bits: only json.dumps can say
    return wire_size(body) <= max_bytes


def split_patch(ops: list[PatchOp], max_bytes: int) -> list[list[PatchOp]]:
    """Chunks of ``ops`` that each serialise under ADT's request size limit, measured as the SDK sends them."""
    if fits_on_wire(ops, max_bytes):
        return [ops]
    chunks: list[list[PatchOp]] = [[]]
    size = 2
    for op in ops:
        op_size = wire_size(op) + 2
        if chunks[-1] and size + op_size > max_bytes:
            chunks.append([])
            size = 2
        chunks[-1].append(op)
        size += op_size
    return chunks
