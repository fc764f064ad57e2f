"""The pieces the R-tests share: one pipeline per "function instance", a twin store that counts effective writes
and can crash, an independent reference model, and event streams with unique, checkable values."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.adapters.twins.embedded.catalog import ModelCatalog
from shared.adapters.twins.embedded.store import EmbeddedTwinStore
from shared.errors import Code, TransientError
from shared.ports import StateStore, TwinStore
from shared.settings.app_config import AppConfig
from shared.settings.throughput import ThroughputSettings
from shared.twins.group_commit import GroupCommit
from shared.twins.pipeline import BatchReport, Pipeline
from shared.twins.write_pacer import PacedTwinStore
from shared.wiring import build_pipeline, embedded_twin_store, pace
from tests.support import event_factory as factory

MODELS = Path(__file__).resolve().parents[2] / "models"
CATALOG = ModelCatalog.load_dir(MODELS)
CONFIG = AppConfig.from_data({"topics": [factory.TOPIC]})
TELEMETRY_PROPERTIES = ("temperature", "humidity")


class Crash(Exception):
    """The function instance died mid-batch: nothing of this delivery is acknowledged, the broker resends it."""


class CountingTwins:
    """A TwinStore wrapper counting *successful* writes (failed 412s do not count) and what each wrote.

    ``crash_after`` / ``fail_after``: after that many more successful writes, the next write raises ``Crash`` (an
    unexpected death) or ``TransientError`` (throttling past the budget) instead of reaching the store.
    """

    def __init__(self, inner: TwinStore) -> None:
        self.inner = inner
        self.writes: dict[str, int] = {}
        self.written_values: list[tuple[str, str, Any]] = []  # (twin, property, value) per successful write
        self.crash_after: int | None = None
        self.fail_after: int | None = None
        self.injected = {"crashes": 0, "throttles": 0}  # faults that struck (raised), by kind
        self._lock = threading.Lock()
        self._delete_lock = threading.Lock()

    def total(self) -> int:
        with self._lock:
            return sum(self.writes.values())

    def _gate(self) -> None:
        with self._lock:
            if self.crash_after is not None:
                if self.crash_after <= 0:
                    self.injected["crashes"] += 1
                    raise Crash("instance died before this twin write")
                self.crash_after -= 1
            if self.fail_after is not None:
                if self.fail_after <= 0:
                    self.injected["throttles"] += 1
                    raise TransientError(Code.ADT_THROTTLED, "injected: throttled past the budget")
                self.fail_after -= 1

    def _count(self, twin_id: str, values: Iterable[tuple[str, Any]]) -> None:
        with self._lock:
            self.writes[twin_id] = self.writes.get(twin_id, 0) + 1
            self.written_values.extend((twin_id, name, value) for name, value in values)

    def get_twin(self, twin_id: str) -> dict[str, Any] | None:
        return self.inner.get_twin(twin_id)

    def create_twin(self, twin_id: str, document: dict[str, Any]) -> str:
        self._gate()
        etag = self.inner.create_twin(twin_id, document)
        self._count(twin_id, ((k, v) for k, v in document.items() if not k.startswith("$")))
        return etag

    def patch_twin(self, twin_id: str, patch: list[dict[str, Any]], etag: str) -> str:
        self._gate()
        new_etag = self.inner.patch_twin(twin_id, patch, etag)
        self._count(twin_id, ((op["path"].lstrip("/"), op.get("value")) for op in patch))
        return new_etag

    def delete_twin(self, twin_id: str, etag: str | None = None) -> None:
        self._gate()
        with self._delete_lock:  # a DELETE of a twin already gone is a no-op (ADT: 404, swallowed): not a write
            existed = self.inner.get_twin(twin_id) is not None
            self.inner.delete_twin(twin_id, etag)
        if existed:
            self._count(twin_id, ())

    def list_twins(self) -> Any:
        return self.inner.list_twins()

    def list_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        return self.inner.list_relationships(twin_id)

    def list_incoming_relationships(self, twin_id: str) -> list[dict[str, Any]]:
        return self.inner.list_incoming_relationships(twin_id)

    def upsert_relationship(self, twin_id: str, relationship_id: str, relationship: dict[str, Any]) -> str:
        return self.inner.upsert_relationship(twin_id, relationship_id, relationship)

    def delete_relationship(self, twin_id: str, relationship_id: str) -> None:
        self.inner.delete_relationship(twin_id, relationship_id)


class CrashingState:
    """A StateStore wrapper whose save raises ``Crash`` after ``crash_after`` more successful saves."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.crash_after: int | None = None

    def load(self, twin_id: str) -> Any:
        return self.inner.load(twin_id)

    def version(self, twin_id: str) -> str | None:
        return self.inner.version(twin_id)

    def save(self, shadow: Any, etag: str | None) -> str:
        if self.crash_after is not None:
            if self.crash_after <= 0:
                raise Crash("instance died before this state write")
            self.crash_after -= 1
        return self.inner.save(shadow, etag)


def new_graph() -> EmbeddedTwinStore:
    return embedded_twin_store(CATALOG)


# PACED (set per test by the `delivery` fixture, tests/reliability/conftest.py): the R-test runs with the Event Grid
# door's group commit and the write pacer on (issue 19): twins behind shared.wiring.pace, each process() call
# dispatched as the host dispatches an array — one concurrent submission per event to a GroupCommit — with a per-twin
# rate low enough to make writes queue.
PACED = False
BUILT: list[CoalescedPipeline] = []  # the paced pipelines a test built: the fixture checks and closes them
# (group-commit batches, paced writes sent, seconds writes waited) of those built in other processes
REMOTE_PACED: list[tuple[int, int, float]] = []
PACED_LIMITS = ThroughputSettings(twin_writes_per_second=400, patches_per_second=100_000, reads_per_second=100_000,
                                  creates_deletes_per_second=100_000)


class CoalescedPipeline:
    """A pipeline whose ``process`` goes through a GroupCommit as the trigger door's invocations do; its twins
    behind the write pacer (``paced``)."""

    def __init__(self, pipeline: Pipeline, paced: PacedTwinStore) -> None:
        self.pipeline = pipeline
        self.paced = paced
        self.commit = GroupCommit(pipeline.process, window=0.001, max_wait=0.01)
        BUILT.append(self)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pipeline, name)

    def process(self, events: list[Any]) -> BatchReport:
        async def invocations() -> list[Any]:
            return await asyncio.gather(*(self.commit.submit(e) for e in events), return_exceptions=True)

        results = asyncio.run(invocations())
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return BatchReport([dataclasses.replace(r, index=i) for i, r in enumerate(results)])


def make_pipeline(twins: TwinStore, state: StateStore, *, concurrency: int = 1) -> Pipeline:
    if PACED:
        paced = pace(twins, PACED_LIMITS)
        pipeline = build_pipeline(CONFIG, paced, catalog=CATALOG, state=state, max_concurrency=concurrency)
        return CoalescedPipeline(pipeline, paced)  # type: ignore[return-value]
    return build_pipeline(CONFIG, twins, catalog=CATALOG, state=state, max_concurrency=concurrency)


def user_properties(twin: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if twin is None else {k: v for k, v in twin.items() if not k.startswith("$")}


# ---- events with a checkable meaning ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Connection:
    device: str
    sequence: int
    connected: bool

    def event(self) -> dict[str, Any]:
        return factory.connection(self.device, self.sequence, connected=self.connected, second=5,
                                  event_id=f"conn-{self.device}-{self.sequence}")


@dataclass(frozen=True)
class Telemetry:
    device: str
    number: int  # unique per stream: the value written is number + 0.5, so every write can be traced to it
    second: int  # enqueued time; ties broken by event id, as the pipeline does
    prop: str

    @property
    def event_id(self) -> str:
        return f"tel-{self.device}-{self.number:05d}"

    @property
    def value(self) -> float:
        return self.number + 0.5

    def event(self) -> dict[str, Any]:
        return factory.telemetry(self.device, {self.prop: self.value}, second=10 + self.second,
                                 event_id=self.event_id)


Change = Connection | Telemetry


def model(changes: Iterable[Change]) -> dict[str, dict[str, Any]]:
    """The reference: per device, the connection state of the highest sequence number and, per property, the
    value of the latest enqueued telemetry (ties: the greater event id). Written independently of shared/."""
    best_conn: dict[str, Connection] = {}
    best_tel: dict[tuple[str, str], Telemetry] = {}
    for change in changes:
        if isinstance(change, Connection):
            seen = best_conn.get(change.device)
            if seen is None or change.sequence > seen.sequence:
                best_conn[change.device] = change
        else:
            key = (change.device, change.prop)
            seen_t = best_tel.get(key)
            if seen_t is None or (change.second, change.event_id) > (seen_t.second, seen_t.event_id):
                best_tel[key] = change
    out: dict[str, dict[str, Any]] = {}
    for device, conn in best_conn.items():
        out.setdefault(device, {})["connectionState"] = "Connected" if conn.connected else "Disconnected"
    for (device, prop), tel in best_tel.items():
        out.setdefault(device, {})[prop] = tel.value
    return out
