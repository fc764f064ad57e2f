"""The local run around the twins: its quarantine (read and replayed) and its host's counters (egress per route).

The quarantine is the one the app is configured with, read from the run's settings file (``local.settings.json``:
its ``Values`` are the app settings; read by the local host's reader, twinbridge/localhost/settings_file.py), and
replayed by the very function behind ``python -m twinbridge quarantine replay``. The counters are the local host's
``GET /admin/twinbridge/stats``.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from shared.ports import QuarantineRecord
from twinbridge.commands.quarantine import ReadableQuarantine, readable, replay
from twinbridge.localhost.settings_file import LocalSettings, SettingsFileError

EXCERPT_LIMIT = 600  # characters of the excerpt sent to the page; the record keeps the rest


class LocalRunError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _Selected:
    """The quarantine seen through a list of record ids: replay then touches those records only."""

    def __init__(self, store: ReadableQuarantine, ids: set[str]) -> None:
        self.store = store
        self.ids = ids

    def put(self, record: QuarantineRecord) -> None:
        self.store.put(record)

    def list(self, since: datetime | None = None) -> list[QuarantineRecord]:
        return [r for r in self.store.list(since) if r.record_id in self.ids]

    def get(self, record_id: str) -> QuarantineRecord | None:
        return self.store.get(record_id) if record_id in self.ids else None

    def delete(self, record_id: str) -> bool:
        return self.store.delete(record_id)


class LocalRun:
    """``settings``: the run's local.settings.json (None: no quarantine view); ``host``: the local host's URL."""

    def __init__(self, settings: str | Path | None = None, host: str | None = None) -> None:
        self.settings = Path(settings) if settings else None
        self.host = host.rstrip("/") if host else None
        self._app: Any = None
        self._lock = threading.Lock()  # one replay at a time: two would race on the same records

    def _build(self) -> Any:
        """The app as the host builds it from the same settings (its pipeline replays; its quarantine is read)."""
        if self._app is None:
            if self.settings is None:
                raise LocalRunError("NoSettings", "start the explorer with --settings (the run's local.settings.json)")
            if not self.settings.is_file():
                raise LocalRunError("NoSettings", f"no settings file at {self.settings}")
            from shared.settings.environment import Settings
            from shared.wiring import build_app

            try:  # read as the local host reads it (Core Tools' rules): its Values are the app settings
                values = LocalSettings.load(self.settings).values
            except SettingsFileError as exc:
                raise LocalRunError("SettingsInvalid", str(exc)) from None
            self._app = build_app(Settings.from_env(values))
        return self._app

    def _store(self) -> ReadableQuarantine:
        app = self._build()
        store = readable(app)
        if store is None:
            raise LocalRunError("QuarantineUnreadable", f"the configured quarantine ({type(app.quarantine).__name__}) "
                                                        "cannot be read back (use jsonl or blob)")
        return store

    def quarantine(self) -> list[dict[str, Any]]:
        records = self._store().list()
        return [{"recordId": r.record_id, "code": r.code, "message": r.message, "problems": r.problems,
                 "eventId": r.event_id, "eventType": r.event_type, "subject": r.subject, "twinId": r.twin_id,
                 "receivedAt": r.received_at, "source": r.source, "replayable": r.source == "ingest" and
                 r.event is not None, "excerpt": r.excerpt[:EXCERPT_LIMIT]} for r in records]

    def replay(self, record_ids: list[str] | None = None) -> dict[str, Any]:
        """Like ``quarantine replay``: an app built afresh from the settings (a fixed config or mapping is used)."""
        with self._lock:
            self.close()
            store = self._store()
            chosen: ReadableQuarantine = store if record_ids is None else _Selected(store, set(record_ids))
            summary = replay(self._build(), chosen)
        return {"replayed": summary.replayed, "resolved": summary.resolved, "stillQuarantined": summary.still_failing,
                "superseded": summary.superseded, "transient": summary.retry, "skipped": summary.skipped,
                "codes": dict(summary.codes), "line": summary.line()}

    def stats(self) -> dict[str, Any]:
        if self.host is None:
            raise LocalRunError("NoHost", "start the explorer with --host (the local host's URL) to see its counters")
        try:
            response = requests.get(f"{self.host}/admin/twinbridge/stats", timeout=5)
            response.raise_for_status()
        except requests.RequestException as exc:
            raise LocalRunError("HostUnreachable", f"{self.host}: {exc}") from exc
        data: dict[str, Any] = response.json()
        return data

    def close(self) -> None:
        app, self._app = self._app, None
        twins = getattr(app, "twins", None)
        close = getattr(twins, "close", None)
        if callable(close):
            close()
