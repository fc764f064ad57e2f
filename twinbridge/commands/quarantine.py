"""``python -m twinbridge quarantine list|show ID|replay``: inspect and replay quarantined events.

The quarantine is the one the app is configured with (``TWINBRIDGE_QUARANTINE`` = blob | jsonl | memory, with
``AzureWebJobsStorage`` / ``TWINBRIDGE_QUARANTINE_FILE``; see local.settings.example.json), read from the
environment like the Function App does.

``replay`` sends the stored events back through a pipeline built from the current settings (``--config`` picks
another app config, e.g. after a mapping fix) and removes every record whose event is not quarantined again.
An event that fails again with the same code keeps its record; with a new code the new record replaces the old
one; a transient failure keeps the record and makes the exit status 1 (run again later). Only ``ingest`` records
are replayed here (egress records belong to the egress tooling).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from shared.errors import ConfigError
from shared.outcome import Outcome
from shared.ports import QuarantineRecord
from shared.quarantine_record import record_id
from shared.settings.environment import Settings
from shared.wiring import App, build_app

BATCH = 100


class ReadableQuarantine(Protocol):
    def put(self, record: QuarantineRecord) -> None: ...

    def list(self, since: datetime | None = None) -> list[QuarantineRecord]: ...

    def get(self, record_id: str) -> QuarantineRecord | None: ...

    def delete(self, record_id: str) -> bool: ...


@dataclass
class ReplaySummary:
    replayed: int = 0
    resolved: int = 0  # applied, stale, duplicate or filtered now: record removed
    still_failing: int = 0  # quarantined again with the same code: record kept
    superseded: int = 0  # quarantined again with another code: the new record replaced the old one
    retry: int = 0  # transient failure: record kept, run again later
    skipped: int = 0  # not an ingest record, or no event stored
    codes: Counter[str] = field(default_factory=Counter)

    def line(self) -> str:
        codes = ", ".join(f"{c} {n}" for c, n in sorted(self.codes.items()))
        return (f"replayed {self.replayed}: resolved {self.resolved}, still quarantined {self.still_failing}, "
                f"re-quarantined with a new code {self.superseded}, transient {self.retry}, skipped {self.skipped}"
                + (f" ({codes})" if codes else ""))


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("quarantine", help="list, show and replay quarantined events",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    listing = sub.add_parser("list", help="one line per record, oldest first")
    listing.add_argument("--since", type=_iso, help="only records received at or after this ISO 8601 time")
    listing.add_argument("--json", action="store_true", help="JSON Lines of the records (events redacted)")
    show = sub.add_parser("show", help="one record as JSON")
    show.add_argument("record_id")
    show.add_argument("--event", action="store_true", help="include the full original event (device data!)")
    replay = sub.add_parser("replay", help="send quarantined events through the pipeline again")
    replay.add_argument("--since", type=_iso, help="only records received at or after this ISO 8601 time")
    collect = sub.add_parser("collect-dead-letters",
                             help="move Event Grid's dead-letters into the quarantine (code DEAD_LETTERED)")
    collect.add_argument("--folder", help="a dead-letter folder (the local publisher's --deadletter-dir); default: "
                                          "TWINBRIDGE_DEADLETTER_DIR, else the Blob container on AzureWebJobsStorage")
    for p in (listing, show, replay, collect):
        p.add_argument("--config", help="app config (YAML/JSON); default: TWINBRIDGE_CONFIG or built-in defaults")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        app = _build(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    store = readable(app)
    if store is None:
        print(f"the configured quarantine ({type(app.quarantine).__name__}) cannot be read back; set "
              "TWINBRIDGE_QUARANTINE=blob (with AzureWebJobsStorage) or jsonl (with TWINBRIDGE_QUARANTINE_FILE)",
              file=sys.stderr)
        return 2
    if args.action == "collect-dead-letters":
        return _collect(app, args.folder)
    if args.action == "list":
        for record in store.list(args.since):
            if args.json:
                print(orjson.dumps({**record.to_data(), "event": None}, default=str).decode())
            else:
                print(f"{record.record_id}  {record.received_at}  {record.code:<22} {record.event_type or '-'}  "
                      f"{record.subject or '-'}  {record.message[:80]}")
        return 0
    if args.action == "show":
        found = store.get(args.record_id)
        if found is None:
            print(f"no quarantine record {args.record_id}", file=sys.stderr)
            return 1
        data = found.to_data()
        if not args.event:
            data["event"] = "<omitted: use --event>"
        print(orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2).decode())
        return 0
    summary = replay(app, store, args.since)
    print(summary.line())
    return 1 if summary.retry else 0


def _build(config: str | None) -> App:
    settings = Settings.from_env()
    if config:
        settings = dataclasses.replace(settings, config_path=config)
    return build_app(settings)


def readable(app: App) -> ReadableQuarantine | None:
    store = app.quarantine
    if all(callable(getattr(store, name, None)) for name in ("list", "get", "delete")):
        return store  # type: ignore[return-value]
    return None


def replay(app: App, store: ReadableQuarantine, since: datetime | None = None) -> ReplaySummary:
    """Replay the records received since ``since`` through ``app.pipeline``; remove the ones that now pass."""
    summary = ReplaySummary()
    records = []
    for record in store.list(since):
        if record.source != "ingest" or record.event is None:
            summary.skipped += 1
        else:
            records.append(record)
    for start in range(0, len(records), BATCH):
        batch = records[start:start + BATCH]
        report = app.pipeline.process([r.event for r in batch])
        for record, result in zip(batch, report.results, strict=True):
            summary.replayed += 1
            if result.outcome is Outcome.RETRY:
                summary.retry += 1
            elif result.outcome is Outcome.QUARANTINED:
                summary.codes[result.code or "?"] += 1
                if record_id(record.event, result.code or "") == record.record_id:
                    summary.still_failing += 1
                else:
                    store.delete(record.record_id)
                    summary.superseded += 1
            else:
                store.delete(record.record_id)
                summary.resolved += 1
    return summary


def _collect(app: App, folder: str | None) -> int:
    from shared.doors.dead_letters import FolderDeadLetters, collect
    from shared.errors import TransientError

    source = FolderDeadLetters(folder) if folder else app.dead_letters
    if source is None:
        print("no dead-letter source: pass --folder, or set TWINBRIDGE_DEADLETTER_DIR or AzureWebJobsStorage",
              file=sys.stderr)
        return 2
    total = 0
    try:
        while True:  # all of it, a bounded number of blobs at a time
            report = collect(source, app.quarantine)
            print(report.line())
            total += report.blobs
            if report.blobs == 0:
                break
    except TransientError as exc:
        print(f"stopped: {exc} (the blobs not collected stay; run again)", file=sys.stderr)
        return 1
    return 0


def _iso(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date-time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
