"""Building quarantine records: stable id, redacted and size-capped excerpt, the problems with their paths."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.errors import TwinbridgeError
from shared.ports import QuarantineRecord

EXCERPT_CHARS = 512


MAX_DEPTH = 128  # levels kept in a record: far below orjson's 254, so a record can always be written
_INT64 = range(-(2**63), 2**63)


def _safe_text(value: str) -> str:
    try:
        value.encode()
        return value
    except UnicodeEncodeError:  # a lone surrogate: shown escaped ("\\ud800"), so the record is valid UTF-8 JSON
        return value.encode("utf-8", "backslashreplace").decode()


def _safe_scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _safe_text(value)
    if isinstance(value, int):
        return value if value in _INT64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    try:
        return _safe_text(str(value))
    except Exception:
        return f"<{type(value).__name__}>"


def json_safe(value: Any) -> Any:
    """``value`` with what JSON (and orjson) cannot carry — integers beyond 64 bits, NaN, infinities, lone
    surrogates, non-string keys, other types, nesting deeper than ``MAX_DEPTH`` — as strings, so a record of bad
    input can always be stored and shown. Iterative (an event nested 10,000 levels deep must not recurse) and it
    never raises."""
    if not isinstance(value, dict | list | tuple):
        return _safe_scalar(value)
    try:
        return _copy_containers(value)
    except Exception:  # e.g. a mapping whose items() raises: the record is still made
        return f"<{type(value).__name__} that cannot be shown>"


def _copy_containers(value: Any) -> Any:
    root: list[Any] = [None]
    # (container to copy, where its copy goes: (parent, key), depth)
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 1)]
    while stack:
        source, parent, key, depth = stack.pop()
        if depth > MAX_DEPTH:
            parent[key] = f"<nested deeper than {MAX_DEPTH} levels>"
            continue
        try:  # each container on its own: one that fails when read (a foreign mapping) is shown as such
            pairs = list(source.items()) if isinstance(source, dict) else list(enumerate(source))
        except Exception:  # a foreign container that cannot be read
            parent[key] = f"<{type(source).__name__} that cannot be shown>"
            continue
        if isinstance(source, dict):
            out_dict: dict[str, Any] = {}
            parent[key] = out_dict
            for k, v in pairs:
                name = k if isinstance(k, str) else str(_safe_scalar(k))
                name = _safe_text(name)
                if isinstance(v, dict | list | tuple):
                    out_dict[name] = None
                    stack.append((v, out_dict, name, depth + 1))
                else:
                    out_dict[name] = _safe_scalar(v)
        else:
            out_list: list[Any] = [None] * len(pairs)
            parent[key] = out_list
            for i, v in pairs:
                if isinstance(v, dict | list | tuple):
                    stack.append((v, out_list, i, depth + 1))
                else:
                    out_list[i] = _safe_scalar(v)
    return root[0]


def redact(event: Any) -> Any:
    """The event with device payload values hidden: telemetry body and application properties."""
    if not isinstance(event, dict):
        return f"<{type(event).__name__}>"
    out = dict(event)
    data = out.get("data")
    if isinstance(data, dict):
        data = dict(data)
        if "body" in data:
            body = data["body"]
            data["body"] = (f"<redacted object, {len(body)} keys>" if isinstance(body, dict)
                            else f"<redacted {type(body).__name__}>")
        if isinstance(data.get("properties"), dict):
            data["properties"] = {k: "<redacted>" for k in data["properties"]}
        out["data"] = data
    return out


def excerpt(event: Any) -> str:
    """The redacted, size-capped text of ``event``, which must be a ``json_safe`` copy already (as in
    ``build_record``; redacting only hides values, so the copy stays safe)."""
    try:
        text = orjson.dumps(redact(event)).decode()
    except (TypeError, ValueError):  # not json_safe after all: a record is made whatever the input
        text = f"<{type(event).__name__} that cannot be shown>"
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def record_id(event: Any, code: str) -> str:
    """Deterministic: the same event failing the same way twice (redelivery) overwrites one record."""
    digest = hashlib.sha256(code.encode())
    try:
        digest.update(orjson.dumps(event, default=str, option=orjson.OPT_SORT_KEYS))
    except (TypeError, ValueError):  # deep, huge ints, surrogates...: the JSON-safe copy always serializes
        digest.update(orjson.dumps(json_safe(event), option=orjson.OPT_SORT_KEYS))
    return digest.hexdigest()[:32]


def build_record(event: Any, error: TwinbridgeError, *, twin_id: str | None = None, source: str = "ingest",
                 now: datetime | None = None) -> QuarantineRecord:
    event = json_safe(event)
    fields = event if isinstance(event, dict) else {}

    def text(*names: str) -> str | None:
        for name in names:
            value = fields.get(name)
            if isinstance(value, str):
                return value
        return None

    return QuarantineRecord(
        record_id=record_id(event, error.code),
        code=str(error.code),
        message=error.message,
        problems=[{"path": p.path, "message": p.message} for p in error.problems],
        event_id=text("id"),
        event_type=text("eventType", "type"),
        subject=text("subject"),
        twin_id=twin_id,
        received_at=(now or datetime.now(UTC)).isoformat(),
        excerpt=excerpt(event),  # the json_safe copy: not made a second time
        event=event,
        source=source,
    )
