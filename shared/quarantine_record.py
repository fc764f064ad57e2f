"""Building quarantine records: stable id, redacted and size-capped excerpt, the problems with their paths."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import orjson

from shared.errors import TwinbridgeError
from shared.ports import QuarantineRecord

EXCERPT_CHARS = 512


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
