"""Freshness merge rules (order independence, tombstones) and the JSON Patch planner."""

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.outcome import Outcome
from shared.settings.app_config import MissingTwinPolicy
from shared.twins.freshness import (
    CONNECTION,
    DELETED,
    LIFECYCLE,
    LIVE,
    TOMBSTONE,
    Intent,
    Shadow,
    merge,
    merge_all,
    undo,
)
from shared.twins.patch_plan import (
    diff,
    dropped_paths,
    fits_on_wire,
    plan,
    same_value,
    split_patch,
    wants_twin,
    wire_size,
)


def conn(seq, connected=True, ticks=None):
    return Intent(f"c{seq}", "t", False, (seq,), ticks or seq, {CONNECTION: connected})


def tel(ticks, value, name="temperature", eid=None):
    eid = eid or f"m{ticks}-{value}"
    return Intent(eid, "t", False, (ticks, eid), ticks, {name: value})


def created(ticks, version=1):
    return Intent(f"cr{ticks}", "t", True, (ticks, version, 0), ticks, {LIFECYCLE: LIVE})


def deleted(ticks, version=2):
    return Intent(f"de{ticks}", "t", True, (ticks, version, 1), ticks, {LIFECYCLE: DELETED, TOMBSTONE: DELETED})


def test_connection_sequence_equal_is_duplicate_lower_is_stale():
    shadow = Shadow("t", "m")
    assert merge(shadow, conn(5))[0] is Outcome.APPLIED
    assert merge(shadow, conn(5))[0] is Outcome.DUPLICATE
    assert merge(shadow, conn(4, connected=False))[0] is Outcome.STALE
    assert shadow.marks[CONNECTION].value is True
    assert merge(shadow, conn(9, connected=False))[0] is Outcome.APPLIED
    assert shadow.marks[CONNECTION].value is False


def test_telemetry_keeps_latest_enqueued_time_per_property_with_id_tie_break():
    shadow = Shadow("t", "m")
    merge(shadow, tel(10, 1.0))
    assert merge(shadow, tel(5, 2.0))[0] is Outcome.STALE
    merge(shadow, tel(10, 3.0, eid="zz"))  # same tick, larger id wins in any order
    assert shadow.marks["temperature"].value == 3.0


def test_late_created_never_resurrects_a_deleted_device():
    shadow = Shadow("t", "m")
    merge(shadow, deleted(20))
    assert merge(shadow, created(10))[0] is Outcome.STALE
    assert shadow.lifecycle == DELETED
    assert not wants_twin(shadow, twin_exists=True, policy=MissingTwinPolicy.CREATE)


def test_deletion_drops_older_data_keeps_newer_and_survives_re_creation():
    shadow = Shadow("t", "m")
    merge(shadow, tel(5, 1.0))
    merge(shadow, tel(30, 2.0, name="humidity"))
    merge(shadow, deleted(20))
    assert set(shadow.device_fields()) == {"humidity"}
    merge(shadow, created(25))
    assert merge(shadow, tel(15, 9.0))[0] is Outcome.STALE  # older than the deletion, even after re-creation
    assert shadow.lifecycle == LIVE and shadow.tombstone_ticks == 20


def test_undo_reverts_only_what_is_still_ours():
    shadow = Shadow("t", "m")
    merge(shadow, tel(1, 1.0))
    _, changes = merge(shadow, tel(2, 2.0))
    assert undo(shadow, changes) and shadow.marks["temperature"].value == 1.0
    _, changes = merge(shadow, tel(3, 3.0))
    merge(shadow, tel(4, 4.0))
    assert not undo(shadow, changes) and shadow.marks["temperature"].value == 4.0


def test_shadow_round_trips_through_data():
    shadow = Shadow("t", "m")
    for intent in (created(1), conn(2), tel(3, 1.5)):
        merge(shadow, intent)
    assert Shadow.from_data(shadow.to_data()) == shadow


# One sequence number is one event (IoT Hub never reuses one), so the state is a function of it here.
intents = st.lists(st.one_of(
    st.builds(lambda seq: conn(seq, seq % 3 != 0), st.integers(1, 8)),
    st.builds(tel, st.integers(1, 8), st.sampled_from([1.0, 2.0, 3.0]), st.sampled_from(["temperature", "humidity"])),
    st.builds(created, st.integers(1, 8)),
    st.builds(deleted, st.integers(1, 8)),
), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(intents, st.randoms(use_true_random=False))
def test_merge_is_order_independent_and_idempotent(stream, rnd):
    in_order, shuffled = Shadow("t", "m"), Shadow("t", "m")
    for intent in stream:
        merge(in_order, intent)
    replay = stream * 2
    rnd.shuffle(replay)
    for intent in replay:
        merge(shuffled, intent)
    assert shuffled.marks == in_order.marks


def multi(ticks, eid, **values):
    return Intent(eid, "t", False, (ticks, eid), ticks, values)


device_intents = st.lists(st.one_of(
    st.builds(lambda seq: conn(seq, seq % 3 != 0), st.integers(1, 8)),
    st.builds(tel, st.integers(1, 8), st.sampled_from([1.0, 2.0, 3.0]), st.sampled_from(["temperature", "humidity"])),
    st.builds(lambda t, e, a, b: multi(t, e, temperature=a, humidity=b), st.integers(1, 8), st.sampled_from("xyz"),
              st.floats(0, 3), st.booleans()),
), max_size=15)


@settings(max_examples=400, deadline=None)
@given(intents, device_intents)
def test_merge_all_is_the_sequential_merge(history, batch):
    # Any prior state (deletions and re-creations included), then one batch: the one-pass merge gives every event
    # the outcome the event-by-event merge gives it, and leaves the same shadow.
    sequential = Shadow("t", "m")
    for intent in history:
        merge(sequential, intent)
    one_pass = sequential.copy()
    expected = [merge(sequential, intent)[0] for intent in batch]
    outcomes, changes = merge_all(one_pass, batch)
    assert outcomes == expected
    assert one_pass.marks == sequential.marks and one_pass.owned == sequential.owned
    undo(one_pass, changes)  # the changes undo the batch
    replayed = Shadow("t", "m")
    for intent in history:
        merge(replayed, intent)
    assert one_pass.marks == replayed.marks


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 50), st.booleans()), min_size=1, max_size=20))
def test_stored_sequence_never_decreases(events):
    shadow, highest = Shadow("t", "m"), 0
    for seq, connected in events:
        merge(shadow, conn(seq, connected))
        stored = shadow.marks[CONNECTION].order[0]
        assert stored >= highest
        highest = stored
    assert highest == max(seq for seq, _ in events)


def test_diff_adds_missing_replaces_changed_and_skips_equal():
    twin = {"$dtId": "t", "temperature": 20, "online": 1, "nested": {"a": 1}}
    ops = diff(twin, {("temperature",): 20.0, ("humidity",): 40, ("online",): True, ("nested", "a"): 1,
                      ("nested", "b"): 2, ("comp", "x"): 5})
    assert ops == [{"op": "add", "path": "/humidity", "value": 40},
                   {"op": "replace", "path": "/online", "value": True},
                   {"op": "add", "path": "/nested/b", "value": 2},
                   {"op": "add", "path": "/comp", "value": {"x": 5}}]


def test_same_value_is_json_equality():
    assert same_value(20, 20.0) and not same_value(True, 1) and not same_value("1", 1)


def test_plan_creates_patches_deletes_or_does_nothing():
    shadow = Shadow("t", "dtmi:x;1")
    merge(shadow, tel(1, 5.0))
    created_action = plan(shadow, None, True, {("temperature",): 5.0}, 32_768)
    assert created_action.kind == "create"
    assert created_action.document == {"$metadata": {"$model": "dtmi:x;1"}, "temperature": 5.0}
    assert plan(shadow, {"temperature": 5.0, "$etag": "e"}, True, {("temperature",): 5.0}, 32_768).kind == "none"
    assert plan(shadow, {"$etag": "e"}, False, {}, 32_768).kind == "delete"
    assert plan(shadow, None, False, {}, 32_768).kind == "none"


def test_big_patches_are_split_under_the_size_limit():
    ops = [{"op": "add", "path": f"/p{i}", "value": "x" * 100} for i in range(50)]
    chunks = split_patch(ops, 1_000)
    assert [op for chunk in chunks for op in chunk] == ops and len(chunks) > 1
    assert all(wire_size(chunk) <= 1_000 for chunk in chunks)


def test_patch_size_is_measured_as_the_sdk_sends_it():
    import json

    ops = [{"op": "add", "path": f"/p{i}", "value": "é" * 900} for i in range(7)]  # \u00e9 escapes: 6 bytes each
    for chunk in split_patch(ops, 32_768):
        assert len(json.dumps(chunk).encode()) <= 32_768


def test_deleted_data_leaves_the_twin_even_when_the_twin_stays():
    shadow = Shadow("t", "m")
    merge(shadow, tel(5, 21.5))
    merge(shadow, conn(3, ticks=4))
    merge(shadow, deleted(10))
    merge(shadow, created(20))
    twin = {"$etag": "e", "temperature": 21.5, "connectionState": "Connected", "notOurs": 1}
    action = plan(shadow, twin, True, {}, 32_768, dropped_paths(shadow, ("connectionState",)))
    assert action.patches == [[{"op": "remove", "path": "/connectionState"},
                               {"op": "remove", "path": "/temperature"}]]


def test_random_streams_shuffle_to_the_same_shadow():
    rnd = random.Random(7)
    stream = [conn(s, s % 2 == 0) for s in range(1, 30)] + [tel(t, float(t)) for t in range(1, 30)]
    a, b = Shadow("t", "m"), Shadow("t", "m")
    for i in stream:
        merge(a, i)
    rnd.shuffle(stream)
    for i in stream:
        merge(b, i)
    assert a.marks == b.marks and a.marks[CONNECTION].order == (29,)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(_JSON, st.integers(0, 600))
def test_the_cheap_size_check_agrees_with_the_sdk_serialisation(body, limit):
    # The fast answer (orjson length x 3) may only say "fits" when json.dumps agrees; otherwise it measures.
    assert fits_on_wire(body, limit) == (wire_size(body) <= limit)
