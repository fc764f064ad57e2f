"""Event Grid's dead-letters, moved into the quarantine (issue 15 §5): nothing Event Grid gave up on is lost.

Event Grid writes a dead-letter as one blob per batch in the subscription's dead-letter container, named
``<SUBSCRIPTION-NAME>/<yyyy>/<M>/<d>/<H>/<guid>.json`` (the subscription name upper-cased), holding a JSON array of
the undelivered events, each with the delivery's facts added: ``deadLetterReason``, ``deliveryAttempts``,
``lastDeliveryOutcome``, ``lastHttpStatusCode``, ``publishTime``, ``lastDeliveryAttemptTime`` (docs/reliability.md,
"Dead-letters", with the sources). For a CloudEvents subscription the same facts are accepted as lower-case
extension attributes.

Each event becomes one quarantine record with code ``DEAD_LETTERED``: ``event`` is the event as it was published
(the added fields removed, so ``quarantine replay`` sends it through the pipeline as if delivered now) and
``extra`` keeps the added fields and the blob's name. Record ids are deterministic, so collecting a blob twice (a
crash between writing the records and deleting the blob) writes the same records again. A blob is deleted only
after all its records are written. Elements of the blob that are not JSON (a corrupt or cut blob) are kept as the
blob's whole text in one more record, so a blob that is not JSON at all is quarantined whole, and deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shared.errors import Code, PermanentError, Problem
from shared.ingest.json_elements import Unparsable, iter_elements
from shared.ports import Quarantine, QuarantineRecord
from shared.quarantine_record import build_record

log = logging.getLogger("twinbridge.deadletters")

DELIVERY_FIELDS = ("deadLetterReason", "deliveryAttempts", "lastDeliveryOutcome", "lastHttpStatusCode",
                   "publishTime", "lastDeliveryAttemptTime")
_LOWER = {name.lower(): name for name in DELIVERY_FIELDS}


class DeadLetterSource(Protocol):
    """Where Event Grid (or the local publisher) leaves dead-letter blobs."""

    def names(self) -> Iterator[str]: ...

    def read(self, name: str) -> bytes | None: ...

    def delete(self, name: str) -> None: ...


@dataclass
class CollectReport:
    blobs: int = 0
    records: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items()))
        return (f"dead-letters: {self.blobs} blob(s), {self.records} event(s) moved to the quarantine"
                + (f" ({reasons})" if reasons else ""))


def split_delivery_facts(event: Any) -> tuple[Any, dict[str, Any]]:
    """(the event as published, the fields Event Grid added when it dead-lettered it)."""
    if not isinstance(event, dict):
        return event, {}
    original: dict[str, Any] = {}
    facts: dict[str, Any] = {}
    for key, value in event.items():
        name = key if key in DELIVERY_FIELDS else _LOWER.get(key) if "specversion" in event else None
        if name is not None:
            facts[name] = value
        else:
            original[key] = value
    return original, facts


def records_from_blob(name: str, data: bytes) -> list[QuarantineRecord]:
    """One record per dead-lettered event. Read with the shared element reader (shared/ingest/json_elements.py),
    as replay files and webhook bodies are: integers beyond 64 bits stay exact, and an element that is not JSON
    does not take the others with it. What cannot be read is kept once, as the blob's whole text (one record whose
    problems name each unreadable element's line), so nothing in the blob is lost."""
    records: list[QuarantineRecord] = []
    unreadable: list[Problem] = []
    for value, _size in iter_elements(data):
        if isinstance(value, Unparsable):
            unreadable.append(Problem("", f"line {value.line}: {value.error}"))
            continue
        original, facts = split_delivery_facts(value)
        reason = str(facts.get("deadLetterReason") or "unknown")
        message = (f"Event Grid dead-lettered it: {reason} after {facts.get('deliveryAttempts', '?')} attempt(s); "
                   f"last outcome: {facts.get('lastDeliveryOutcome') or '-'}")
        record = build_record(original, PermanentError.at(Code.DEAD_LETTERED, "", message))
        record.extra = {**facts, "deadLetterBlob": name}
        records.append(record)
    if unreadable:
        message = (f"dead-letter blob with {len(unreadable)} element(s) that are not JSON: kept as the blob's text "
                   f"({len(records)} other event(s) quarantined one by one)")
        record = build_record(data.decode("utf-8", "replace"),
                              PermanentError(Code.DEAD_LETTERED, message, tuple(unreadable)))
        record.extra = {"deadLetterBlob": name}
        records.append(record)
    return records


def collect(source: DeadLetterSource, quarantine: Quarantine, limit: int = 100) -> CollectReport:
    """Move up to ``limit`` dead-letter blobs into the quarantine. A failing quarantine write raises (the blob stays
    for the next run)."""
    report = CollectReport()
    for name in source.names():
        if report.blobs >= limit:
            break
        data = source.read(name)
        if data is None:
            continue
        records = records_from_blob(name, data)
        for record in records:
            quarantine.put(record)
            reason = str(record.extra.get("deadLetterReason") or "unknown")
            report.reasons[reason] = report.reasons.get(reason, 0) + 1
        source.delete(name)
        report.blobs += 1
        report.records += len(records)
        log.warning("collected dead-letter blob %s: %d event(s) quarantined as DEAD_LETTERED", name, len(records))
    return report


class FolderDeadLetters:
    """The local publisher's dead-letter folder (twinbridge/simulator/publisher.py), laid out as Event Grid's."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def names(self) -> Iterator[str]:
        if not self.root.is_dir():
            return iter(())
        return iter(sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*.json") if p.is_file()))

    def read(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.is_file() else None

    def delete(self, name: str) -> None:
        (self.root / name).unlink(missing_ok=True)
