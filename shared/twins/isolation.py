"""When Digital Twins refuses a write: find which fields it refuses, so only their events are quarantined.

ADT rejects a whole PATCH (400 ValidationFailed) for one bad property — typically a field the model in ADT does not
declare, which the app cannot know when that model is not in its local catalog. Undoing the whole batch would
quarantine the valid events with it, and would leave a bad value merged by an earlier, interrupted delivery in
the state for ever, poisoning every later write to the twin. Instead the planned operations are tried one at a
time (conditional on the ETag, absolute values, so applying the good ones now is what the next write would do
anyway) and the refused ones are reported by shadow field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.errors import Code, TransientError, TwinConflict, TwinMissing, TwinRejected
from shared.ports import TwinStore
from shared.twins.freshness import CONNECTION, Shadow
from shared.twins.patch_plan import diff

Path = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Refusal:
    field: str  # shadow field name ('temperature', 'thermostat1/temperature', '$connection')
    event_id: str  # the event whose value it is
    reason: str


def refused_fields(twins: TwinStore, twin_id: str, twin: dict[str, Any] | None, shadow: Shadow,
                   properties: dict[Path, Any], connection_path: Path | None,
                   count_write: Callable[[], None]) -> list[Refusal] | None:
    """The shadow fields ADT refuses for this twin, having written every field it accepts.

    None when the twin itself is refused (its model is not uploaded, its id is invalid): nothing field-level helps.
    Raises TransientError if another writer interferes (the broker redelivers and this starts again).
    """
    try:
        if twin is None:
            count_write()
            twins.create_twin(twin_id, {"$metadata": {"$model": shadow.model_id}})
            twin = twins.get_twin(twin_id)
            if twin is None:
                raise TwinMissing(twin_id)
    except TwinRejected:
        return None
    except (TwinConflict, TwinMissing) as exc:
        raise TransientError(Code.CONFLICT_RETRIES_EXHAUSTED, f"twin {twin_id} changed while isolating: {exc}") from exc
    etag = str(twin.get("$etag", "*"))
    refusals: list[Refusal] = []
    for op in diff(twin, properties):
        try:
            count_write()
            etag = twins.patch_twin(twin_id, [op], etag)
        except TwinRejected as exc:
            for name in _fields_under(op["path"], shadow, connection_path):
                refusals.append(Refusal(name, shadow.marks[name].event_id, f"{exc.code}: {exc.message}"))
        except (TwinConflict, TwinMissing) as exc:
            raise TransientError(Code.CONFLICT_RETRIES_EXHAUSTED,
                                 f"twin {twin_id} changed while isolating: {exc}") from exc
    return refusals


def _fields_under(pointer: str, shadow: Shadow, connection_path: Path | None) -> list[str]:
    """Shadow fields projected at or below a JSON Pointer (an ``add`` of a parent object covers its children)."""
    target = tuple(part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/"))
    out = []
    for name in shadow.device_fields():
        path = connection_path if name == CONNECTION else tuple(name.split("/"))
        if path is not None and path[:len(target)] == target:
            out.append(name)
    return out
