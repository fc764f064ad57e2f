"""The twin graph engine: ADT semantics of twins, patches, relationships, models and event routes, persistence
that commits before it acknowledges, and change notifications."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.adapters.twins.embedded import AdtError, Notification, TwinGraph
from shared.adapters.twins.embedded.persistence import Change, MemoryStorage

V3 = "dtmi:dtdl:context;3"
ROOM = "dtmi:ex:Room;1"
ROOM2 = "dtmi:ex:Room;2"
MODELS = [
    {"@id": ROOM, "@type": "Interface", "@context": V3, "contents": [
        {"@type": "Property", "name": "temp", "schema": "double"},
        {"@type": "Property", "name": "info", "schema": {"@type": "Object", "fields": [
            {"name": "a", "schema": "string"}, {"name": "b", "schema": "string"}]}},
        {"@type": "Property", "name": "list", "schema": {"@type": "Array", "elementSchema": "integer"}},
        {"@type": "Relationship", "name": "contains", "target": ROOM, "maxMultiplicity": 2,
         "properties": [{"@type": "Property", "name": "w", "schema": "integer"}]},
        {"@type": "Relationship", "name": "near"}]},
    {"@id": ROOM2, "@type": "Interface", "@context": V3, "contents": [
        {"@type": "Property", "name": "label", "schema": "string"}]},
]


def refused(call, status, code):
    with pytest.raises(AdtError) as caught:
        call()
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.message
    return caught.value


@pytest.fixture
def graph():
    g = TwinGraph()
    g.add_models(MODELS)
    return g


def put(graph, twin_id="t", model=ROOM, **props):
    return graph.put_twin(twin_id, {"$metadata": {"$model": model}, **props})


# ---- twins -----------------------------------------------------------------------------------------------------
def test_put_rejects_bad_if_none_match_and_unknown_models(graph):
    refused(lambda: graph.put_twin("t", {"$metadata": {"$model": ROOM}}, if_none_match='"x"'), 400,
            "InvalidArgument")
    refused(lambda: put(graph, model="dtmi:ex:Nope;1"), 400, "ValidationFailed")
    refused(lambda: graph.put_twin("t", {"temp": 1}), 400, "ValidationFailed")
    refused(lambda: graph.put_twin("t", {"$metadata": {"$model": ROOM}, "$custom": 1}), 400, "ValidationFailed")


def test_a_get_twin_can_be_put_back(graph):
    """Read-only metadata (lastUpdateTime) coming back from a GET is ignored, sourceTime kept."""
    first = graph.put_twin("t", {"$metadata": {"$model": ROOM, "temp": {"sourceTime": "2024-01-01T00:00:00Z"}},
                                 "temp": 1.0})
    again = graph.put_twin("t", first)
    assert again["$metadata"]["temp"]["sourceTime"] == "2024-01-01T00:00:00Z" and again["$etag"] != first["$etag"]


@pytest.mark.parametrize(("ops", "status", "code"), [
    ([{"op": "replace", "path": "/temp", "value": 1.0}], 400, "JsonPatchInvalid"),  # never set
    ([{"op": "remove", "path": "/temp"}], 400, "JsonPatchInvalid"),
    ([{"op": "add", "path": "/info/a", "value": "x"}], 400, "JsonPatchInvalid"),  # parent object absent
    ([{"op": "move", "from": "/a", "path": "/temp"}], 400, "JsonPatchInvalid"),
    ([{"op": "test", "path": "/temp", "value": 1}], 400, "JsonPatchInvalid"),
    ([{"op": "add", "path": "/temp"}], 400, "JsonPatchInvalid"),  # no value
    ([{"op": "add", "path": "/$dtId", "value": "x"}], 400, "JsonPatchInvalid"),
    ([{"op": "add", "path": "/$metadata/temp/lastUpdateTime", "value": "x"}], 400, "JsonPatchInvalid"),
    ([{"op": "add", "path": "/nope", "value": 1}], 400, "ValidationFailed"),
    ([{"op": "add", "path": "/$metadata/temp/sourceTime", "value": "noon"}], 400, "ValidationFailed"),
    ({"op": "add"}, 400, "JsonPatchInvalid"),  # not an array
])
def test_invalid_patches(graph, ops, status, code):
    put(graph)
    refused(lambda: graph.patch_twin("t", ops), status, code)


def test_a_failed_patch_changes_nothing(graph):
    etag = put(graph, temp=1.0)["$etag"]
    refused(lambda: graph.patch_twin("t", [{"op": "replace", "path": "/temp", "value": 2.0},
                                           {"op": "add", "path": "/nope", "value": 1}]), 400, "ValidationFailed")
    twin = graph.get_twin("t")
    assert twin["temp"] == 1.0 and twin["$etag"] == etag


def test_patch_semantics(graph):
    put(graph, temp=1.0, info={"a": "x"}, list=[1, 2])
    graph.patch_twin("t", [{"op": "add", "path": "/info/b", "value": "y"},
                           {"op": "add", "path": "/list/-", "value": 3},
                           {"op": "add", "path": "/list/0", "value": 0},
                           {"op": "remove", "path": "/list/1"},
                           {"op": "add", "path": "/$metadata/temp/sourceTime", "value": "2024-01-01T00:00:00Z"}])
    twin = graph.get_twin("t")
    assert twin["info"] == {"a": "x", "b": "y"} and twin["list"] == [0, 2, 3]
    assert twin["$metadata"]["temp"]["sourceTime"] == "2024-01-01T00:00:00Z"
    before = twin["$metadata"]["temp"]
    graph.patch_twin("t", [{"op": "replace", "path": "/temp", "value": 2.0}])
    after = graph.get_twin("t")["$metadata"]["temp"]
    assert after["sourceTime"] == before["sourceTime"] and after["lastUpdateTime"] > before["lastUpdateTime"]
    graph.patch_twin("t", [{"op": "remove", "path": "/$metadata/temp/sourceTime"}])
    assert "sourceTime" not in graph.get_twin("t")["$metadata"]["temp"]


def test_model_migration_must_leave_a_valid_twin(graph):
    """how-to-manage-twin: replace /$metadata/$model works when the twin is valid for the new model."""
    put(graph, temp=1.0)
    refused(lambda: graph.patch_twin("t", [{"op": "replace", "path": "/$metadata/$model", "value": ROOM2}]),
            400, "ValidationFailed")
    graph.patch_twin("t", [{"op": "replace", "path": "/$metadata/$model", "value": ROOM2},
                           {"op": "remove", "path": "/temp"}, {"op": "add", "path": "/label", "value": "x"}])
    assert graph.get_twin("t")["$metadata"]["$model"] == ROOM2


def test_if_match(graph):
    etag = put(graph, temp=1.0)["$etag"]
    new = graph.patch_twin("t", [{"op": "add", "path": "/temp", "value": 2.0}], if_match=etag)
    refused(lambda: graph.patch_twin("t", [{"op": "add", "path": "/temp", "value": 3.0}], if_match=etag), 412,
            "PreconditionFailed")
    graph.patch_twin("t", [{"op": "add", "path": "/temp", "value": 3.0}], if_match=f'"{new}"')  # SDK-quoted
    refused(lambda: graph.delete_twin("t", if_match=etag), 412, "PreconditionFailed")
    graph.delete_twin("t", if_match="*")


def test_oversized_bodies(graph):
    put(graph)
    refused(lambda: graph.patch_twin("t", [{"op": "add", "path": "/info", "value": {"a": "x" * 4000}}] * 9),
            413, "PayloadTooLarge")


# ---- relationships ---------------------------------------------------------------------------------------------
def test_relationship_rules(graph):
    put(graph, "a")
    put(graph, "b")
    put(graph, "c")
    put(graph, "d")
    put(graph, "x", model=ROOM2)
    refused(lambda: graph.put_relationship("ghost", "r", {"$targetId": "b", "$relationshipName": "near"}), 404,
            "DigitalTwinNotFound")
    refused(lambda: graph.put_relationship("a", "r", {"$targetId": "a", "$relationshipName": "near"}), 400,
            "OperationNotAllowed")
    refused(lambda: graph.put_relationship("a", "r", {"$targetId": "x", "$relationshipName": "contains"}), 400,
            "InvalidRelationship")  # target must be a Room
    refused(lambda: graph.put_relationship("a", "r", {"$relationshipName": "near"}), 400, "InvalidArgument")
    for target in ("b", "c"):
        graph.put_relationship("a", f"c-{target}", {"$targetId": target, "$relationshipName": "contains"})
    refused(lambda: graph.put_relationship("a", "c-d", {"$targetId": "d", "$relationshipName": "contains"}), 400,
            "InvalidRelationship")  # maxMultiplicity 2
    graph.put_relationship("a", "c-b", {"$targetId": "d", "$relationshipName": "contains"})  # a replacement is fine
    assert [r["$sourceId"] for r in graph.list_incoming_relationships("d")] == ["a"]
    assert graph.list_incoming_relationships("b") == []  # the replaced relationship moved its target
    refused(lambda: graph.put_relationship("a", "c-b", {"$targetId": "b", "$relationshipName": "contains"},
                                           if_none_match="*"), 412, "PreconditionFailed")
    refused(lambda: graph.delete_twin("d"), 400, "RelationshipsNotDeleted")
    refused(lambda: graph.delete_twin("a"), 400, "RelationshipsNotDeleted")


def test_relationship_patch(graph):
    put(graph, "a")
    put(graph, "b")
    rel = graph.put_relationship("a", "r", {"$targetId": "b", "$relationshipName": "contains", "w": 1})
    etag = graph.patch_relationship("a", "r", [{"op": "replace", "path": "/w", "value": 2}], if_match=rel["$etag"])
    assert graph.get_relationship("a", "r")["w"] == 2 and etag != rel["$etag"]
    refused(lambda: graph.patch_relationship("a", "r", [{"op": "replace", "path": "/w", "value": "x"}]), 400,
            "ValidationFailed")
    refused(lambda: graph.patch_relationship("a", "r", [{"op": "replace", "path": "/$targetId", "value": "a"}]),
            400, "JsonPatchInvalid")
    refused(lambda: graph.patch_relationship("a", "r", [{"op": "add", "path": "/w", "value": 3}],
                                             if_match=rel["$etag"]), 412, "PreconditionFailed")
    refused(lambda: graph.get_relationship("a", "nope"), 404, "RelationshipNotFound")


BUILDING = "dtmi:ex:Building;1"
WITH_COMPONENT = [*MODELS, {"@id": BUILDING, "@type": "Interface", "@context": V3, "contents": [
    {"@type": "Component", "name": "room", "schema": ROOM}]}]


def test_a_refused_patch_changes_nothing_nested_in_a_component():
    """patch_twin copies only the containers on an op's path (copy on write): an op that lands before a refused
    one must not reach the stored twin through a container the two versions share."""
    graph = TwinGraph()
    graph.add_models(WITH_COMPONENT)
    graph.put_twin("b", {"$metadata": {"$model": BUILDING},
                         "room": {"$metadata": {}, "info": {"a": "x"}, "list": [1, 2]}})
    before = graph.get_twin("b")
    refused(lambda: graph.patch_twin("b", [{"op": "replace", "path": "/room/info/a", "value": "changed"},
                                           {"op": "add", "path": "/room/list/0", "value": 0},
                                           {"op": "add", "path": "/room/temp", "value": "not a double"}]),
            400, "ValidationFailed")
    assert graph.get_twin("b") == before
    graph.patch_twin("b", [{"op": "replace", "path": "/room/info/a", "value": "changed"}])
    after = graph.get_twin("b")
    assert after["room"]["info"] == {"a": "changed"} and after["room"]["list"] == [1, 2]
    assert before["room"]["info"] == {"a": "x"}  # what an earlier reader holds never changes with the twin


def test_a_refused_relationship_patch_changes_nothing():
    graph = TwinGraph()
    graph.add_models(MODELS)
    put(graph, "a")
    put(graph, "b")
    graph.put_relationship("a", "r", {"$targetId": "b", "$relationshipName": "contains", "w": 1})
    before = graph.get_relationship("a", "r")
    refused(lambda: graph.patch_relationship("a", "r", [{"op": "replace", "path": "/w", "value": 2},
                                                       {"op": "add", "path": "/nope", "value": 1}]),
            400, "ValidationFailed")
    assert graph.get_relationship("a", "r") == before


# ---- models ----------------------------------------------------------------------------------------------------
def test_deleting_a_model_leaves_twins_but_new_twins_need_it(graph):
    put(graph, "t")
    graph.delete_model(ROOM2)
    refused(lambda: put(graph, "u", model=ROOM2), 400, "ValidationFailed")
    refused(lambda: graph.delete_model(ROOM2), 404, "ModelNotFound")
    refused(lambda: graph.update_model(ROOM, [{"op": "replace", "path": "/decommissioned", "value": False}]), 400,
            "JsonPatchInvalid")


# ---- persistence -----------------------------------------------------------------------------------------------
class FailingStorage(MemoryStorage):
    def __init__(self) -> None:
        self.fail = False

    def write(self, changes: Sequence[Change]) -> None:
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")


def test_memory_changes_only_after_the_commit():
    storage = FailingStorage()
    graph = TwinGraph(storage=storage)
    graph.add_models(MODELS)
    heard: list[Notification] = []
    graph.subscribe(heard.append)
    etag = put(graph, temp=1.0)["$etag"]
    storage.fail = True
    for write in (lambda: put(graph, "u"), lambda: graph.patch_twin("t", [{"op": "add", "path": "/temp", "value": 2}]),
                  lambda: graph.delete_twin("t"), lambda: graph.add_models([{**MODELS[1], "@id": "dtmi:ex:X;1"}])):
        with pytest.raises(sqlite3.OperationalError):
            write()
    assert graph.get_twin("t")["$etag"] == etag and graph.find_twin("u") is None
    assert not graph.registry.knows("dtmi:ex:X;1")
    assert [n.type for n in heard] == ["Microsoft.DigitalTwins.Twin.Create"]  # nothing told about failed writes


def test_sqlite_round_trip(tmp_path):
    db = tmp_path / "g.db"
    graph = TwinGraph(db)
    graph.add_models(MODELS)
    put(graph, "a", temp=1.0)
    put(graph, "b")
    graph.put_relationship("a", "r", {"$targetId": "b", "$relationshipName": "near"})
    graph.put_event_route("route", {"endpointName": "e", "filter": "true"})
    graph.update_model(ROOM2, [{"op": "replace", "path": "/decommissioned", "value": True}])
    saved = graph.get_twin("a")
    graph.close()
    again = TwinGraph(db)
    assert again.get_twin("a") == saved
    assert again.get_twin("a")["temp"] == 1.0 and again.list_relationships("a")[0]["$targetId"] == "b"
    assert again.get_model(ROOM2)["decommissioned"] is True
    assert again.list_event_routes() == [{"id": "route", "endpointName": "e", "filter": "true"}]
    assert [m["id"] for m in again.list_models()] == [ROOM, ROOM2]


# ---- notifications and routes --------------------------------------------------------------------------------
def test_notifications_follow_concepts_event_notifications(graph):
    heard: list[Notification] = []
    graph.subscribe(heard.append)
    put(graph, "a", temp=1.0)
    put(graph, "b")
    graph.patch_twin("a", [{"op": "replace", "path": "/temp", "value": 2.0}])
    graph.put_relationship("a", "r", {"$targetId": "b", "$relationshipName": "near"})
    graph.delete_relationship("a", "r")
    graph.send_telemetry("a", {"t": 1}, "m-1")
    graph.delete_twin("b")
    assert [n.type.rsplit(".", 2)[-2:] for n in heard] == [
        ["Twin", "Create"], ["Twin", "Create"], ["Twin", "Update"], ["Relationship", "Create"],
        ["Relationship", "Delete"], ["iot", "telemetry"], ["Twin", "Delete"]]
    update = heard[2]
    assert update.data == {"modelId": ROOM, "patch": [{"op": "replace", "path": "/temp", "value": 2.0}]}
    assert heard[3].subject == "a/relationships/r" and heard[5].message_id == "m-1"


def test_routes_filter_notifications(graph):
    graph.put_event_route("creates", {"endpointName": "e", "filter": "type = 'Microsoft.DigitalTwins.Twin.Create'"})
    graph.put_event_route("all", {"endpointName": "e", "filter": "true"})
    heard: list[Notification] = []
    graph.subscribe(heard.append)
    put(graph, "a")
    graph.delete_twin("a")
    assert [sorted(r.id for r in graph.routes_for(n)) for n in heard] == [["all", "creates"], ["all"]]
    refused(lambda: graph.put_event_route("bad id!", {"endpointName": "e", "filter": "true"}), 400,
            "EventRouteIdInvalid")
    refused(lambda: graph.put_event_route("r", {"endpointName": "e"}), 400, "EventRouteFilterInvalid")
    limited = TwinGraph(endpoints=["known"])
    refused(lambda: limited.put_event_route("r", {"endpointName": "other", "filter": "true"}), 400,
            "EventRouteEndpointInvalid")


# ---- hostile input ---------------------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                 max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["op", "path", "value", "from"]),
                                st.sampled_from(["add", "replace", "remove", "/temp", "/info/a", "/list/0",
                                                 "/$metadata/temp/sourceTime", "/list/-", "/", ""]) | JSON,
                                max_size=4), max_size=4))
def test_hostile_patches_answer_400_or_apply_validly(ops: Any) -> None:
    graph = TwinGraph()
    graph.add_models(MODELS)
    put(graph, temp=1.0, info={"a": "x"}, list=[1])
    before = graph.get_twin("t")
    try:
        graph.patch_twin("t", ops)
    except AdtError as error:
        assert error.status == 400 and error.code in ("JsonPatchInvalid", "ValidationFailed")
        assert graph.get_twin("t") == before
        return
    # accepted: the result is a valid twin of its model (putting it back validates it again)
    graph.put_twin("copy", graph.get_twin("t"))


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["$metadata", "temp", "info", "list", "$dtId", "x", ""]),
                       JSON | st.fixed_dictionaries({"$model": st.just(ROOM)}, optional={"temp": JSON}), max_size=4))
def test_hostile_twin_bodies_answer_400_or_store_a_valid_twin(body: Any) -> None:
    graph = TwinGraph()
    graph.add_models(MODELS)
    try:
        stored = graph.put_twin("t", body)
    except AdtError as error:
        assert error.status == 400 and graph.find_twin("t") is None
        return
    assert stored["$metadata"]["$model"] == ROOM
    graph.put_twin("copy", stored)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="SELECT*FROMDIGITALTWINSWHERE JOINRELATED.$dtId=<>!'\"[](),ANDORNOTIN0123456789xT@-\\",
               max_size=80))
def test_hostile_query_text_is_a_sql_query_error_or_an_answer(text: str) -> None:
    graph = TwinGraph()
    try:
        graph.query(text)
    except AdtError as error:
        assert (error.status, error.code) == (400, "SqlQueryError")


def test_notifications_carry_the_requests_traceparent(graph):
    from shared.adapters.twins.embedded.graph import TRACEPARENT

    heard: list[Notification] = []
    graph.subscribe(heard.append)
    token = TRACEPARENT.set("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    try:
        put(graph, "a")
    finally:
        TRACEPARENT.reset(token)
    put(graph, "b")
    assert heard[0].attributes()["traceparent"] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert "traceparent" not in heard[1].attributes()


def test_holding_the_lock_makes_several_calls_one_step(graph):
    import threading

    put(graph, "a", temp=1.0)
    done = threading.Event()

    def writer() -> None:
        graph.patch_twin("a", [{"op": "replace", "path": "/temp", "value": 2.0}])
        done.set()

    with graph.lock:
        thread = threading.Thread(target=writer)
        thread.start()
        assert not done.wait(0.2)  # the writer waits for us
        assert graph.get_twin("a")["temp"] == 1.0
    thread.join(5)
    assert done.is_set() and graph.get_twin("a")["temp"] == 2.0
