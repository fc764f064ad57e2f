"""The Table Storage StateStore honours the same contract as the memory store, against a real Azurite."""

from __future__ import annotations

import itertools
import random
import string
from datetime import UTC, datetime, timedelta

import pytest
import responses
from azure.data.tables import TableClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.adapters.state.memory import MemoryStateStore
from shared.adapters.state.table import MIN_RETENTION, ROW_KEY, TableStateStore, encode_key, pack, unpack
from shared.errors import Code, StateConflict, TransientError
from shared.ports import StateStore
from shared.twins.freshness import CONNECTION, DELETED, LIFECYCLE, LIVE, TOMBSTONE, Mark, Shadow
from tests.support import event_factory as factory
from twinbridge.azurite import Azurite

MODEL = "dtmi:twinbridge:IoTDevice;1"


def shadow(twin_id: str, seq: int = 1, **fields: object) -> Shadow:
    marks = {CONNECTION: Mark((seq,), True, f"e{seq}", seq)}
    for name, value in fields.items():
        marks[name] = Mark((seq, f"t{seq}"), value, f"t{seq}", seq)
    return Shadow(twin_id, MODEL, marks)


@pytest.fixture(params=["memory", "table"])
def store(request: pytest.FixtureRequest) -> StateStore:
    if request.param == "memory":
        return MemoryStateStore()
    request.applymarker(pytest.mark.integration)
    azurite: Azurite = request.getfixturevalue("azurite")
    return TableStateStore.from_connection_string(azurite.connection_string, request.getfixturevalue("table_name"))


def test_insert_then_conditional_replace(store: StateStore) -> None:
    assert store.load("dev-1") is None
    etag1 = store.save(shadow("dev-1", 1), None)
    loaded = store.load("dev-1")
    assert loaded is not None and loaded[0] == shadow("dev-1", 1) and loaded[1] == etag1
    with pytest.raises(StateConflict):
        store.save(shadow("dev-1", 9), None)  # insert of an existing record: someone else was first
    etag2 = store.save(shadow("dev-1", 2), etag1)
    assert etag2 != etag1
    with pytest.raises(StateConflict):
        store.save(shadow("dev-1", 3), etag1)  # stale etag: 412
    loaded = store.load("dev-1")
    assert loaded is not None and loaded[0].marks[CONNECTION].order == (2,)


def test_version_is_the_etag_of_the_record_without_reading_it(store: StateStore) -> None:
    assert store.version("dev-v") is None
    etag1 = store.save(shadow("dev-v", 1, temperature=20.5), None)
    assert store.version("dev-v") == etag1
    etag2 = store.save(shadow("dev-v", 2, temperature=21.0), etag1)
    assert store.version("dev-v") == etag2 != etag1
    loaded = store.load("dev-v")
    assert loaded is not None and loaded[1] == store.version("dev-v")
    assert store.version("dev-other") is None


@pytest.mark.integration
def test_version_reads_the_keys_only(azurite: Azurite, table_name: str) -> None:
    """The applier's last check runs once per written twin: on Table Storage it must not fetch the shadow's body."""
    store = TableStateStore.from_connection_string(azurite.connection_string, table_name)
    etag = store.save(shadow("dev-big", 1, blob="x" * 50_000), None)
    calls: list[dict[str, object]] = []
    real_get = store.client.get_entity

    def spy(*args: object, **kwargs: object) -> object:
        calls.append(kwargs)
        entity = real_get(*args, **kwargs)
        calls.append({"returned": sorted(entity)})
        return entity

    store.client.get_entity = spy  # type: ignore[method-assign]
    assert store.version("dev-big") == etag
    assert calls[0] == {"select": ["PartitionKey"]}
    assert calls[1] == {"returned": ["PartitionKey"]}


@pytest.mark.parametrize("twin_id", ["a/b", "a\\b", "a#b", "a?b", "tab\there", "del\x7fx", "per%cent", "ü-ñ-设备",
                                     "x" * 600, "a%2Fb"])
def test_awkward_twin_ids_round_trip(store: StateStore, twin_id: str) -> None:
    store.save(shadow(twin_id, 5), None)
    loaded = store.load(twin_id)
    assert loaded is not None and loaded[0].twin_id == twin_id


def test_key_encoding_is_injective_and_table_safe() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + "/\\#?%\t\x00\x7f\x85-_.ü"
    ids = {"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(5000)}
    keys = {encode_key(i) for i in ids}
    assert len(keys) == len(ids)
    for key in keys:
        assert not set(key) & set("/\\#?") and all(ord(c) >= 0x20 and not 0x7F <= ord(c) <= 0x9F for c in key)
        assert len(key) <= 256


def test_big_shadow_is_compressed_and_split(store: StateStore) -> None:
    rng = random.Random(3)
    fields = {f"p{i}": "".join(rng.choice(string.ascii_letters) for _ in range(3000)) for i in range(120)}
    big = shadow("big-1", 1, **fields)
    props = pack(big)
    print(f"\nbig shadow: {props['chunks']} chunk(s), encoding {props['encoding']}, "
          f"{sum(len(props[f'd{i}']) for i in range(props['chunks']))} bytes stored")
    assert props["chunks"] > 1 and all(len(props[f"d{i}"]) <= 60_000 for i in range(props["chunks"]))
    assert unpack(props) == big
    etag = store.save(big, None)
    loaded = store.load("big-1")
    assert loaded is not None and loaded[0] == big
    store.save(shadow("big-1", 2), etag)  # shrinking replaces every chunk property (REPLACE mode)
    loaded = store.load("big-1")
    assert loaded is not None and loaded[0] == shadow("big-1", 2)


@pytest.mark.integration
def test_table_is_created_on_first_use(azurite: Azurite, table_name: str) -> None:
    client = TableClient.from_connection_string(azurite.connection_string, table_name)
    store = TableStateStore(client)
    assert store.load("nobody") is None
    client.delete_table()  # deleted under a running store: it is created again
    store.save(shadow("d", 1), None)
    assert store.load("d") is not None


@pytest.mark.integration
def test_purge_only_old_tombstones_bounded(azurite: Azurite, table_name: str) -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    clock = {"now": now - timedelta(hours=30)}
    store = TableStateStore(TableClient.from_connection_string(azurite.connection_string, table_name),
                            clock=lambda: clock["now"])
    gone = Mark((1, 1, 1), DELETED, "del", 1)
    for i in range(5):  # old tombstones
        store.save(Shadow(f"old-{i}", MODEL, {LIFECYCLE: gone, TOMBSTONE: gone}), None)
    store.save(shadow("live-old", 1), None)  # old but alive: never purged
    store.save(Shadow("created", MODEL, {LIFECYCLE: Mark((1, 1, 0), LIVE, "c", 1)}), None)
    clock["now"] = now - timedelta(hours=2)
    store.save(Shadow("young-tomb", MODEL, {LIFECYCLE: gone, TOMBSTONE: gone}), None)
    assert store.purge_expired(now, limit=3) == 3  # bounded per run
    assert store.purge_expired(now, limit=3) == 2
    assert store.purge_expired(now, limit=3) == 0
    remaining = sorted(s.twin_id for s, _ in store.iter_shadows())
    assert remaining == ["created", "live-old", "young-tomb"]
    assert store.purge_expired(now + timedelta(hours=30), limit=10) == 1  # the young one, once it is old


@pytest.mark.integration
def test_saving_over_a_purged_record_is_a_conflict(azurite: Azurite, table_name: str) -> None:
    client = TableClient.from_connection_string(azurite.connection_string, table_name)
    store = TableStateStore(client)
    etag = store.save(shadow("p", 1), None)
    client.delete_entity(encode_key("p"), ROW_KEY)
    with pytest.raises(StateConflict):
        store.save(shadow("p", 2), etag)


def test_retention_below_the_redelivery_horizon_is_refused() -> None:
    with pytest.raises(ValueError, match="redelivery horizon"):
        TableStateStore.from_connection_string("UseDevelopmentStorage=true", "t", retention=MIN_RETENTION / 2)


def test_unreachable_storage_is_transient() -> None:
    store = TableStateStore.from_connection_string(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + "A" * 88
        + ";TableEndpoint=http://127.0.0.1:9/devstoreaccount1;", "tbl", retry_total=0)
    with pytest.raises(TransientError) as caught:
        store.load("d")
    assert caught.value.code is Code.STATE_UNAVAILABLE


@responses.activate
def test_5xx_is_retried_then_transient() -> None:
    url = "https://acct.table.core.windows.net"
    responses.post(f"{url}/Tables", status=409, json={"odata.error": {"code": "TableAlreadyExists",
                                                                          "message": {"value": "exists"}}})
    responses.get(f"{url}/tbl(PartitionKey='d',RowKey='shadow')", status=503,
                  json={"odata.error": {"code": "ServerBusy", "message": {"value": "busy"}}})
    from azure.core.credentials import AzureNamedKeyCredential

    client = TableClient(url, "tbl", credential=AzureNamedKeyCredential("acct", "A" * 88), retry_total=2,
                         retry_backoff_factor=0)
    with pytest.raises(TransientError) as caught:
        TableStateStore(client).load("d")
    assert caught.value.code is Code.STATE_UNAVAILABLE
    gets = [c for c in responses.calls if c.request.method == "GET"]
    assert len(gets) == 3  # the first try and two retries by azure-core's policy, no loop of ours


@pytest.mark.integration
def test_wiring_selects_the_azure_storage_adapters(azurite: Azurite, table_name: str) -> None:
    from shared.adapters.quarantine.blob import BlobQuarantine
    from shared.settings.environment import Settings
    from shared.wiring import build_app

    settings = Settings.from_env({"TWINBRIDGE_STATE_STORE": "table", "TWINBRIDGE_QUARANTINE": "blob",
                                  "AzureWebJobsStorage": azurite.connection_string,
                                  "TWINBRIDGE_STATE_TABLE": table_name,
                                  "TWINBRIDGE_QUARANTINE_CONTAINER": "q" + table_name,
                                  "TWINBRIDGE_ALLOWED_TOPICS": factory.TOPIC})
    app = build_app(settings)
    assert isinstance(app.state, TableStateStore) and isinstance(app.quarantine, BlobQuarantine)
    report = app.pipeline.process([factory.connection("wired-1", 3, second=1), {"id": "x", "topic": "nope"}])
    assert report.counts()["applied"] == 1 and report.counts()["quarantined"] == 1
    loaded = app.state.load("wired-1")
    assert loaded is not None and loaded[0].marks[CONNECTION].order == (3,)
    assert len(app.quarantine.list()) == 1


def test_table_state_without_storage_is_a_config_error() -> None:
    from shared.errors import ConfigError
    from shared.settings.environment import Settings
    from shared.wiring import build_state_store

    with pytest.raises(ConfigError, match="AzureWebJobsStorage"):
        build_state_store(Settings.from_env({"TWINBRIDGE_STATE_STORE": "table"}))


# ---- IoT Hub's real sequence numbers (issue 15): 64 hex digits, a 256-bit number -------------------------------
TICKS = 639_000_000_000_000_000  # a 2026 timestamp in ticks: inside 64 bits, as every real one is


def seq_shadow(twin_id: str, seq: int, **fields: object) -> Shadow:
    marks = {CONNECTION: Mark((seq,), True, f"e{seq}", TICKS)}
    for name, value in fields.items():
        marks[name] = Mark((seq, f"t{seq}"), value, f"t{seq}", TICKS)
    return Shadow(twin_id, MODEL, marks)


_TWIN_NUMBERS = itertools.count()
DOC_SEQUENCE = "000000000000000001D4132452F67CE200000002000000000000000000000001"  # Learn's sample event


def test_documented_sequence_number_round_trips_and_orders(store: StateStore) -> None:
    big = int(DOC_SEQUENCE, 16)
    assert big >= 2**64  # far beyond what a JSON number or a Table Int64 property carries
    store.save(seq_shadow("dev-seq", big), None)
    loaded = store.load("dev-seq")
    assert loaded is not None
    assert loaded[0].marks[CONNECTION].order == (big,)
    assert loaded[0] == seq_shadow("dev-seq", big)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64), min_size=1, max_size=4))
def test_64_hex_digit_sequence_numbers_survive_every_store(store: StateStore, hexes: list[str]) -> None:
    """Every 64-hex-digit value is stored and read back as the same number, and compares as a number after."""
    twin = f"dev-prop-{next(_TWIN_NUMBERS)}"  # hypothesis seeds `random`: a counter keeps ids distinct
    values = [int(h, 16) for h in hexes]
    etag = store.save(seq_shadow(twin, values[0], temp=1.5), None)
    for value in values[1:]:
        loaded = store.load(twin)
        assert loaded is not None
        etag = store.save(seq_shadow(twin, value, temp=1.5), loaded[1])
    loaded = store.load(twin)
    assert loaded is not None and loaded[1] == etag
    got = loaded[0]
    assert got.marks[CONNECTION].order == (values[-1],)
    assert got.marks["temp"].order == (values[-1], f"t{values[-1]}")
    assert got == seq_shadow(twin, values[-1], temp=1.5)
    # the stored number orders like the hex text it came from, whatever the case or leading zeros
    for h in hexes:
        assert (got.marks[CONNECTION].order < (int(h, 16),)) == (values[-1] < int(h, 16))


def test_a_string_order_part_that_looks_like_the_tag_stays_a_string() -> None:
    marks = {"temp": Mark((5, '{"x": "ff"}'), 1, "e", 5), CONNECTION: Mark((2**255 + 7,), True, "c", 5)}
    packed = unpack(pack(Shadow("dev-tag", MODEL, marks)))
    assert packed.marks["temp"].order == (5, '{"x": "ff"}')
    assert packed.marks[CONNECTION].order == (2**255 + 7,)


def test_shadows_written_before_the_text_encoding_still_load() -> None:
    import orjson
    old = {"twin": "dev-old", "model": MODEL, "marks": {CONNECTION: [[123], True, "e", 9]}, "owned": []}
    entity = {"d0": orjson.dumps(old), "encoding": "json", "chunks": 1}
    assert unpack(entity).marks[CONNECTION].order == (123,)
