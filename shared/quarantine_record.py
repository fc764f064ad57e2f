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


def json_safe(value: Any) -> Any:
    """``value`` with what JSON (and orjson) cannot carry — integers beyond 64 bits, NaN, infinities — as strings,
    so a record of bad input can always be stored and shown."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return str(value)


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
    text = orjson.dumps(redact(event), default=str).decode()
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def record_id(event: Any, code: str) -> str:
    """Deterministic: the same event failing the same way twice (redelivery) overwrites one record."""
    digest = hashlib.sha256(code.encode())
    digest.update(orjson.dumps(event, default=str, option=orjson.OPT_SORT_KEYS))
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
        excerpt=excerpt(event),
        event=event,
        source=source,
    )
