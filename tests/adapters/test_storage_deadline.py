"""Storage calls share the invocation's deadline (shared/adapters/storage_calls.py, issue 15 §4).

The store here is a local TCP server that accepts every connection and never answers, used through the real
azure-data-tables and azure-storage-blob clients. Before: 42.5 s for a Table call (10 s read timeout × 4 attempts),
163 s for one Blob quarantine write (15 s-based exponential back-off); the doors answered after that.
"""

from __future__ import annotations

import socket
import threading
import time

import azure.functions as func
import orjson
import pytest

from shared.adapters.checkpoints.table import TableCheckpoints
from shared.adapters.forwarding.table import TableForwardingStore
from shared.adapters.quarantine.blob import BlobQuarantine
from shared.adapters.state.table import TableStateStore
from shared.errors import TransientError
from shared.twins.deadline import invocation_budget
from shared.twins.pipeline import DEFAULT_MAX_CONCURRENCY
from shared.wiring import App
from tests.support import event_factory as factory
from tests.support.rig import make_app
from twinbridge.azurite import ACCOUNT, ACCOUNT_KEY

DOOR_ANSWER_LIMIT = 25.0  # Event Grid waits 30 s for an answer
# One test holds the app's own 20 s budget to DOOR_ANSWER_LIMIT; the others run the same paths on a shorter budget
# (the mechanism does not depend on its length) so the suite does not sleep 20 s per case.
SHORT_BUDGET = 3.0
SLACK = 2.0  # past a budget: one clamped back-off sleep and the last attempt's set-up
SHORT_ANSWER_LIMIT = SHORT_BUDGET + SLACK


def _short(app: App) -> App:
    app.pipeline.budget_seconds = SHORT_BUDGET
    return app


class SilentStore:
    """Accepts TCP connections on loopback and never replies (a hung storage front end); stops by itself."""

    def __init__(self, lifetime: float = 120.0) -> None:
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(64)
        self.server.settimeout(0.2)
        self.port = self.server.getsockname()[1]
        self._stop = threading.Event()
        self._held: list[socket.socket] = []
        self._deadline = time.monotonic() + lifetime
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set() and time.monotonic() < self._deadline:
            try:
                conn, _ = self.server.accept()
            except OSError:
                continue
            self._held.append(conn)  # never read, never answered
        for conn in self._held:
            conn.close()

    @property
    def connection_string(self) -> str:
        endpoint = f"http://127.0.0.1:{self.port}/{ACCOUNT}"
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"BlobEndpoint={endpoint};TableEndpoint={endpoint};")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.server.close()


@pytest.fixture
def silent():
    store = SilentStore()
    yield store
    store.close()


def _timed(call):
    started = time.monotonic()
    with pytest.raises(TransientError):
        call()
    return time.monotonic() - started


BUDGET = 1.5


def test_a_table_state_read_ends_with_the_budget(silent):
    store = TableStateStore.from_connection_string(silent.connection_string, "twinbridgestate")
    with invocation_budget(BUDGET):
        took = _timed(lambda: store.load("d1"))
    assert took < BUDGET + SLACK


def test_a_blob_quarantine_write_ends_with_the_budget(silent):
    from shared.errors import Code, PermanentError
    from shared.quarantine_record import build_record

    quarantine = BlobQuarantine.from_connection_string(silent.connection_string)
    record = build_record(factory.connection("d1", 1), PermanentError(Code.SCHEMA_INVALID, "bad"))
    with invocation_budget(BUDGET):
        took = _timed(lambda: quarantine.put(record))
    assert took < BUDGET + SLACK


def test_checkpoints_and_forwarding_records_end_with_the_budget(silent):
    checkpoints = TableCheckpoints.from_connection_string(silent.connection_string)
    with invocation_budget(BUDGET):
        assert _timed(lambda: checkpoints.get("partition-0")) < BUDGET + SLACK
    with invocation_budget(BUDGET):
        started = time.monotonic()
        with pytest.raises(TransientError):
            TableForwardingStore.from_connection_string(silent.connection_string, "twinbridgeforwarding").seen(["k"])
        assert time.monotonic() - started < BUDGET + SLACK


def _stored_app(silent: SilentStore) -> App:
    """The app's 20 s budget and concurrency, with Table state and a Blob quarantine that never answer."""
    return make_app(state=TableStateStore.from_connection_string(silent.connection_string, "twinbridgestate"),
                    quarantine=BlobQuarantine.from_connection_string(silent.connection_string),
                    max_concurrency=DEFAULT_MAX_CONCURRENCY)


@pytest.mark.integration
def test_the_webhook_answers_within_25_s_when_storage_never_answers(silent):
    from functions import runtime
    from functions.eventgrid_webhook import handle

    poison = factory.connection("d2", 1)
    poison["topic"] = poison["topic"].replace("FACTORY-HUB", "SOMEONE-ELSES-HUB")  # must be quarantined
    body = orjson.dumps([factory.connection("d1", 1), poison])
    request = func.HttpRequest("POST", "https://app.azurewebsites.net/api/eventgrid", body=body,
                               headers={"aeg-event-type": "Notification", "content-type": "application/json"})
    runtime.use_app(_stored_app(silent))
    try:
        started = time.monotonic()
        response = handle(request)
        took = time.monotonic() - started
    finally:
        runtime.use_app(None)
    assert response.status_code == 503  # transient: Event Grid delivers again
    assert took < DOOR_ANSWER_LIMIT, took


@pytest.mark.integration
def test_the_trigger_door_fails_within_its_budget_when_storage_never_answers(silent):
    from functions import runtime
    from tests.functions.test_ingest_iothub_events import invoke

    poison = factory.connection("d3", 1)
    poison["eventTime"] = "garbage"  # quarantined: the Blob write is what hangs
    runtime.use_app(_short(_stored_app(silent)))
    try:
        took = _timed(lambda: invoke(orjson.dumps(poison).decode()))
    finally:
        runtime.use_app(None)
    assert took < SHORT_ANSWER_LIMIT, took


# ---- several poison events at the door (the pipeline's quarantine writes: concurrent, within the budget) -------

def _app_with_quarantine(quarantine) -> App:
    """The twins and state in memory: the quarantine is the only store that is slow or hangs (20 s budget)."""
    return make_app(quarantine=quarantine, max_concurrency=DEFAULT_MAX_CONCURRENCY)


def _poison_batch(count: int) -> bytes:
    events = [factory.connection("good", 1)]
    for i in range(count):
        bad = factory.connection(f"bad{i}", 1)
        bad["eventTime"] = "garbage"  # SCHEMA_INVALID: each one is a quarantine write
        events.append(bad)
    return orjson.dumps(events)


def _webhook_call(app: App, body: bytes, limit: float = 60.0) -> tuple[func.HttpResponse | None, float]:
    """The webhook's answer and how long it took; (None, limit) when it has not answered within ``limit``."""
    from functions import runtime
    from functions.eventgrid_webhook import handle

    request = func.HttpRequest("POST", "https://app.azurewebsites.net/api/eventgrid", body=body,
                               headers={"aeg-event-type": "Notification", "content-type": "application/json"})
    answer: dict[str, object] = {}

    def call() -> None:
        started = time.monotonic()
        answer["response"] = handle(request)
        answer["took"] = time.monotonic() - started

    runtime.use_app(app)
    try:
        door = threading.Thread(target=call, daemon=True)
        door.start()
        door.join(limit)
    finally:
        runtime.use_app(None)
    if "took" not in answer:
        return None, limit
    return answer["response"], answer["took"]  # type: ignore[return-value]


@pytest.mark.integration
def test_the_webhook_answers_within_its_budget_with_20_poison_events_and_a_blob_quarantine_that_never_answers(silent):
    app = _short(_app_with_quarantine(BlobQuarantine.from_connection_string(silent.connection_string)))
    response, took = _webhook_call(app, _poison_batch(20))
    assert response is not None and response.status_code == 503, took  # the batch comes again: nothing lost
    assert took < SHORT_ANSWER_LIMIT, took
    assert app.twins.get_twin("good") is not None  # written meanwhile; a duplicate on redelivery


@pytest.mark.integration
def test_the_webhook_quarantines_40_poison_events_against_a_slow_quarantine_within_25_s():
    from tests.twins.test_quarantine_writes import SlowQuarantine

    quarantine = SlowQuarantine(delay=1.0)  # one by one: 40 s, the batch never got through
    app = _app_with_quarantine(quarantine)
    response, took = _webhook_call(app, _poison_batch(40))
    assert response is not None and response.status_code == 200, took
    assert took < DOOR_ANSWER_LIMIT, took
    assert len(quarantine) == 40


@pytest.mark.integration
def test_the_trigger_door_fails_within_its_budget_when_a_quarantine_without_timeouts_hangs():
    """An adapter with no client timeout of its own (a file on a hung disk): the pipeline's wait is bounded."""
    from functions import runtime
    from tests.functions.test_ingest_iothub_events import invoke  # the async door, awaited as the worker does
    from tests.twins.test_quarantine_writes import SlowQuarantine

    quarantine = SlowQuarantine(hang=True)
    poison = factory.connection("d4", 1)
    poison["eventTime"] = "garbage"
    outcome: dict[str, float] = {}

    def call() -> None:
        outcome["took"] = _timed(lambda: invoke(orjson.dumps(poison).decode()))

    runtime.use_app(_short(_app_with_quarantine(quarantine)))
    try:
        door = threading.Thread(target=call, daemon=True)
        door.start()
        door.join(60)
    finally:
        runtime.use_app(None)
        quarantine.release.set()
    assert "took" in outcome, "the trigger door was still waiting on the quarantine after 60 s"
    assert outcome["took"] < SHORT_ANSWER_LIMIT, outcome
