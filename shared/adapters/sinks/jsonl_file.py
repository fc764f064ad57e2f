"""Local JSONL sink: one line per message (route, message id, partition key, structured CloudEvent). Local runs."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import orjson

from shared.egress.ports import SENT, Delivery, Outgoing, Status
from shared.errors import Code, TransientError


class JsonlFileSink:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def send(self, messages: Sequence[Outgoing]) -> list[Delivery]:
        lines = b"".join(orjson.dumps({"route": m.route, "message_id": m.message_id, "partition_key": m.partition_key,
                                       "event": m.event}) + b"\n" for m in messages)
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("ab") as out:
                    out.write(lines)
        except OSError as exc:
            error = TransientError(Code.SINK_UNAVAILABLE, f"{self.path}: {exc.strerror}")
            return [Delivery(Status.RETRY, error) for _ in messages]
        return [SENT for _ in messages]

    def close(self) -> None:
        return None
