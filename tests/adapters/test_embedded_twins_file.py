"""The embedded twin store over a SQLite file commits before it acknowledges (shared/adapters/twins/embedded/:
persistence.py writes one transaction per write; the graph changes memory only after the commit; store.py maps a
refused commit to TransientError).

Issue 15 §6: with the file locked by another process the write failed, yet memory had the new value, so the
redelivery was a "duplicate" and the file kept the old value for good. Now the failed write changes nothing and
raises TransientError; the redelivery applies.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import orjson
import pytest

from shared.adapters.twins.embedded import TwinGraph, persistence
from shared.adapters.twins.embedded.persistence import TwinGraphFileError
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.errors import TransientError
from shared.outcome import Outcome
from shared.wiring import embedded_twin_store
from tests.support import event_factory as factory
from tests.support.adt_emulator import contract_models
from tests.support.rig import CATALOG, rig


def _file_value(path, twin_id, name):
    """What the file itself holds (the engine's table: one JSON document per kind and key)."""
    with sqlite3.connect(path) as db:
        row = db.execute("SELECT body FROM documents WHERE kind = 'twin' AND key = ?", (twin_id,)).fetchone()
    return None if row is None else orjson.loads(row[0]).get(name)


def _lock(path):
    """Another connection holding the write lock, as another process would."""
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    return holder


@pytest.fixture(autouse=True)
def short_lock_wait(monkeypatch):
    monkeypatch.setattr(persistence, "LOCK_WAIT_SECONDS", 0.05)


def test_a_write_the_locked_file_refused_is_applied_on_redelivery(tmp_path):
    path = tmp_path / "twins.db"
    store = embedded_twin_store(CATALOG, path)
    r = rig(twins=store)
    first = r.pipeline.process([factory.telemetry("d1", {"temperature": 20.0}, second=1, event_id="e1")])
    assert first.results[0].outcome == Outcome.APPLIED

    newer = [factory.telemetry("d1", {"temperature": 30.0}, second=2, event_id="e2")]
    holder = _lock(path)
    try:
        failed = r.pipeline.process(newer)
    finally:
        holder.rollback()
        holder.close()
    assert failed.results[0].outcome == Outcome.RETRY
    with pytest.raises(TransientError):
        failed.raise_if_transient()
    assert store.get_twin("d1")["temperature"] == 20.0  # memory did not run ahead of the file
    assert _file_value(path, "d1", "temperature") == 20.0

    again = r.pipeline.process(newer)  # the broker redelivers
    # The state store took the event before the twin write failed, so the outcome reads "duplicate" (why that is
    # the right word: docs/reliability.md, "The embedded twin graph commits before it acknowledges"); the repair
    # shows in twin_writes. The twin is written from it now (before issue 15: 0 writes, the file kept 20.0).
    assert again.results[0].outcome == Outcome.DUPLICATE
    assert again.twin_writes == 1
    assert _file_value(path, "d1", "temperature") == 30.0
    third = r.pipeline.process(newer)
    assert third.results[0].outcome == Outcome.DUPLICATE and third.twin_writes == 0  # nothing left to repair
    store.close()
    assert EmbeddedTwinStore(TwinGraph(path)).get_twin("d1")["temperature"] == 30.0  # after a restart too


def test_a_delete_the_locked_file_refused_changes_nothing_and_the_retry_completes_it(tmp_path):
    path = tmp_path / "twins.db"
    catalog = type(CATALOG)()
    catalog.add(contract_models())  # the device model with a 'contains' relationship
    store = embedded_twin_store(catalog, path)
    doc = {"$metadata": {"$model": "dtmi:twinbridge:IoTDevice;1"}}
    store.create_twin("a", doc)
    store.create_twin("b", doc)
    store.upsert_relationship("a", "r1", {"$targetId": "b", "$relationshipName": "contains"})
    holder = _lock(path)
    try:
        with pytest.raises(TransientError):
            store.delete_twin("b")
    finally:
        holder.rollback()
        holder.close()
    assert store.get_twin("b") is not None and store.list_relationships("a")
    store.delete_twin("b")
    store.close()
    reopened = EmbeddedTwinStore(TwinGraph(path))
    assert reopened.get_twin("b") is None and reopened.list_relationships("a") == []
    assert reopened.get_twin("a") is not None


def test_a_corrupt_file_is_one_clear_error(tmp_path):
    path = tmp_path / "twins.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(TwinGraphFileError, match=r"twin graph file .*twins\.db cannot be used"):
        TwinGraph(path)


def test_a_file_of_the_retired_graph_is_one_clear_error_not_an_empty_graph(tmp_path):
    path = tmp_path / "twins.db"
    with sqlite3.connect(path) as db:  # the retired graph's layout, with one twin in it
        db.execute("CREATE TABLE twins (id TEXT PRIMARY KEY, body BLOB NOT NULL)")
        db.execute("CREATE TABLE relationships (source TEXT, id TEXT, body BLOB NOT NULL, PRIMARY KEY (source, id))")
        db.execute("INSERT INTO twins VALUES ('d1', '{}')")
    with pytest.raises(TwinGraphFileError, match=r"twins\.db cannot be used: it holds the retired"):
        TwinGraph(path)


def test_the_cli_says_one_line_and_exits_non_zero_for_a_corrupt_file(tmp_path):
    path = tmp_path / "twins.db"
    path.write_bytes(b"garbage" * 1000)
    done = subprocess.run([sys.executable, "-m", "twinbridge", "twins", "--db", str(path), "list"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot be used" in lines[0], done.stderr
