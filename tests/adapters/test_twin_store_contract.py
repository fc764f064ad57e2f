"""The TwinStore contract, run against the embedded store (the ADT engine in process) and the ADT adapter (the real
SDK client over HTTPS against `python -m twinbridge adt serve`): tests/adapters/conftest.py, fixture twin_store."""

import pytest

from shared.errors import TwinConflict, TwinMissing, TwinRejected

MODEL = "dtmi:twinbridge:IoTDevice;1"


def create(store, twin_id="t1", **props):
    return store.create_twin(twin_id, {"$metadata": {"$model": MODEL}, **props})


def test_create_then_get(twin_store):
    etag = create(twin_store, temperature=20.5)
    twin = twin_store.get_twin("t1")
    assert twin["$dtId"] == "t1" and twin["temperature"] == 20.5 and twin["$metadata"]["$model"] == MODEL
    assert twin["$etag"] == etag and etag.startswith('W/"')


def test_get_missing_is_none(twin_store):
    assert twin_store.get_twin("nope") is None


def test_create_is_create_only(twin_store):
    create(twin_store)
    with pytest.raises(TwinConflict):
        create(twin_store, temperature=1.0)
    assert "temperature" not in twin_store.get_twin("t1")


def test_conditional_patch_changes_the_etag_and_refuses_stale_ones(twin_store):
    first = create(twin_store)
    second = twin_store.patch_twin("t1", [{"op": "add", "path": "/temperature", "value": 1.0}], first)
    assert second != first and twin_store.get_twin("t1")["$etag"] == second
    with pytest.raises(TwinConflict):
        twin_store.patch_twin("t1", [{"op": "replace", "path": "/temperature", "value": 2.0}], first)
    assert twin_store.get_twin("t1")["temperature"] == 1.0


def test_patch_of_missing_twin(twin_store):
    with pytest.raises(TwinMissing):
        twin_store.patch_twin("ghost", [{"op": "add", "path": "/temperature", "value": 1.0}], 'W/"x"')


@pytest.mark.parametrize(("op", "code"), [
    ({"op": "replace", "path": "/temperature", "value": 1.0}, "JsonPatchInvalid"),  # never set: replace refused
    ({"op": "add", "path": "/notInModel", "value": 1.0}, "ValidationFailed"),
    ({"op": "add", "path": "/temperature", "value": "hot"}, "ValidationFailed"),
])
def test_invalid_patches_are_rejected(twin_store, op, code):
    etag = create(twin_store)
    with pytest.raises(TwinRejected) as caught:
        twin_store.patch_twin("t1", [op], etag)
    assert caught.value.code == code


def test_delete_removes_relationships_first(twin_store):
    create(twin_store, "room")
    create(twin_store, "sensor")
    create(twin_store, "floor")
    twin_store.upsert_relationship("room", "r1", {"$targetId": "sensor", "$relationshipName": "contains"})
    twin_store.upsert_relationship("floor", "f1", {"$targetId": "room", "$relationshipName": "contains"})
    assert [r["$sourceId"] for r in twin_store.list_incoming_relationships("room")] == ["floor"]
    twin_store.delete_twin("room")
    assert twin_store.get_twin("room") is None
    assert twin_store.list_relationships("floor") == []
    twin_store.delete_twin("room")  # already gone: nothing to do


def test_delete_with_stale_etag_is_refused(twin_store):
    first = create(twin_store)
    twin_store.patch_twin("t1", [{"op": "add", "path": "/temperature", "value": 1.0}], first)
    with pytest.raises(TwinConflict):
        twin_store.delete_twin("t1", first)
    assert twin_store.get_twin("t1") is not None


def test_relationship_to_missing_target(twin_store):
    create(twin_store, "room")
    with pytest.raises(TwinRejected) as caught:
        twin_store.upsert_relationship("room", "r1", {"$targetId": "ghost", "$relationshipName": "contains"})
    assert caught.value.code == "TargetTwinNotFound"


def test_list_twins(twin_store):
    create(twin_store, "b")
    create(twin_store, "a")
    assert sorted(t["$dtId"] for t in twin_store.list_twins()) == ["a", "b"]


def test_a_delete_with_a_stale_etag_leaves_the_relationships(twin_store):
    first = create(twin_store, "room")
    create(twin_store, "sensor")
    twin_store.upsert_relationship("room", "r1", {"$targetId": "sensor", "$relationshipName": "contains"})
    twin_store.patch_twin("room", [{"op": "add", "path": "/temperature", "value": 1.0}], first)
    with pytest.raises(TwinConflict):
        twin_store.delete_twin("room", first)
    assert [r["$relationshipId"] for r in twin_store.list_relationships("room")] == ["r1"]


def test_adt_size_limits(twin_store):
    etag = create(twin_store)
    with pytest.raises(TwinRejected):
        twin_store.patch_twin("t1", [{"op": "add", "path": "/status", "value": "x" * 5000}], etag)
    ops = [{"op": "add", "path": "/status", "value": "y" * 4000}] * 9  # ~36 KB on the wire
    with pytest.raises(TwinRejected):
        twin_store.patch_twin("t1", ops, etag)
